-- contextlake engine, part 4: the one-snapshot read.
-- Each feature set version gets a generated STABLE PL/pgSQL function that
-- reads every feature, age and rule flag of one entity in the caller's single
-- snapshot. PL/pgSQL keeps its statement plans for the session, so a read
-- costs executions, not planning.

-- ===========================================================================
-- Expression checks (on-demand features and rules)
-- ===========================================================================

-- Volatile functions an expression would call, found in its parse tree (built-ins included).
CREATE FUNCTION lake._volatile_calls(p_expression text, p_value_type text, p_row_type text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    tree text;
    found text[];
BEGIN
    EXECUTE format(
        'CREATE TEMP VIEW lake_expression_check AS SELECT (%s)::%s AS v '
        || 'FROM (SELECT (NULL::%s).*) AS f, (SELECT NULL::jsonb AS request, NULL::timestamptz AS as_of) AS ctx',
        p_expression, p_value_type, p_row_type);
    SELECT rw.ev_action::text INTO tree
      FROM pg_rewrite rw WHERE rw.ev_class = 'pg_temp.lake_expression_check'::regclass;
    DROP VIEW pg_temp.lake_expression_check;
    SELECT array_agg(DISTINCT p.oid::regprocedure::text) INTO found
      FROM regexp_matches(tree, ':(?:funcid|opfuncid|aggfnoid|winfnoid) (\d+)', 'g') AS m
      JOIN pg_proc p ON p.oid = m[1]::oid
     WHERE p.provolatile = 'v';
    RETURN found;
END
$$;
COMMENT ON FUNCTION lake._volatile_calls(text, text, text) IS 'compiles an expression against a feature set row and lists the VOLATILE functions it calls: those would break one-snapshot reads';

-- Compiles one expression of a feature set and refuses it if it is invalid or volatile.
CREATE FUNCTION lake._check_expression(p_what text, p_expression text, p_value_type text, p_row_type text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad text[];
BEGIN
    BEGIN
        bad := lake._volatile_calls(p_expression, p_value_type, p_row_type);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION '%: invalid expression %: %', p_what, p_expression, SQLERRM
            USING HINT = 'an expression may use request (jsonb), as_of (timestamptz) and f.<feature> of its feature set',
                  ERRCODE = 'invalid_parameter_value';
    END;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION '%: calls VOLATILE function %', p_what, array_to_string(bad, ', ')
            USING HINT = 'the read path must see one snapshot; only STABLE or IMMUTABLE functions may be used',
                  ERRCODE = 'invalid_function_definition';
    END IF;
END
$$;
COMMENT ON FUNCTION lake._check_expression(text, text, text, text) IS 'definition check: expressions compile against the set and call nothing VOLATILE';

-- ===========================================================================
-- Generation of the read function of a feature set
-- ===========================================================================

-- Builds jsonb_build_object(...) for many pairs (the function takes at most 100 arguments).
CREATE FUNCTION lake._jsonb_object_sql(p_pairs text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg('jsonb_build_object(' || chunk || ')', ' || '), '''{}''::jsonb')
      FROM (SELECT string_agg(p, ', ' ORDER BY i) AS chunk
              FROM unnest(p_pairs) WITH ORDINALITY AS u(p, i)
             GROUP BY (i - 1) / 40) AS c
$$;
COMMENT ON FUNCTION lake._jsonb_object_sql(text[]) IS 'code generation helper for objects of more than 50 keys';

CREATE FUNCTION lake._generate_feature_set(p_name text, p_version int) RETURNS regprocedure
LANGUAGE plpgsql AS $$
DECLARE
    fs lake.feature_sets;
    ft lake.features;
    src lake.sources;
    rl lake.rules;
    row_type text := format('lake_gen.%I', 'fs_' || p_name || '_v' || p_version);
    fn text := format('lake_gen.%I', 'read_' || p_name || '_v' || p_version);
    decl text := '';
    body text := '';
    assign text := '';
    assign_od text := '';
    ages text[] := '{}';
    flags text[] := '{}';
    srcs text[] := '{}';
    wins text[] := '{}';
    v text;
    age text;
    i int;
    w int;
    refs text[];
    result regprocedure;
BEGIN
    SELECT * INTO STRICT fs FROM lake.feature_sets WHERE name = p_name AND version = p_version;
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', row_type);
    EXECUTE format('CREATE TYPE %s AS (%s)', row_type,
                   (SELECT string_agg(format('%I %s', f.name, f.value_type), ', ' ORDER BY u.i)
                      FROM unnest(fs.features) WITH ORDINALITY AS u(n, i) JOIN lake.features f ON f.name = u.n));
    EXECUTE format('COMMENT ON TYPE %s IS %L', row_type, 'feature values of feature set ' || p_name || ' version ' || p_version);

    FOR ft IN SELECT f.* FROM unnest(fs.features) WITH ORDINALITY AS u(n, ord) JOIN lake.features f ON f.name = u.n ORDER BY u.ord LOOP
        IF ft.kind IN ('lifetime', 'window', 'batch') THEN
            SELECT * INTO STRICT src FROM lake.sources WHERE name = ft.source;
            i := array_position(srcs, ft.source);
            IF i IS NULL THEN
                srcs := srcs || ft.source;
                i := cardinality(srcs);
                IF src.kind = 'events' THEN
                    -- Per event source: the lifetime row (its last_t is the entity's newest event), the
                    -- lifetime aggregate as of as_of, and the age of the newest event at or before as_of.
                    decl := decl || format('s_%1$s lake_gen.%2$I; l_%1$s lake_gen.%2$I; age_%1$s double precision; ',
                                           i, src.name || '_agg');
                    body := body || format(
                        'SELECT %1$s INTO s_%2$s FROM lake_gen.%3$I WHERE entity = p_entity::%4$s AND grain = 0 AND tile_start = ''-infinity''; '
                        || 'IF s_%2$s.last_t IS NULL OR s_%2$s.last_t <= as_of THEN l_%2$s := s_%2$s; '
                        || 'ELSE l_%2$s := lake_gen.%5$I(p_entity::%4$s, ''-infinity'', as_of, 86400, s_%2$s.last_t); END IF; '
                        || 'age_%2$s := extract(epoch FROM as_of - l_%2$s.last_t); ',
                        (lake._state_sql(src.name)).agg_names, i, src.name || '_tiles',
                        lake._column_type(src.table_name, src.entity_column), src.name || '_window');
                ELSE
                    decl := decl || format('s_%1$s %2$s; age_%1$s double precision; ', i, src.table_name);
                    body := body || format(
                        'SELECT * INTO s_%1$s FROM %2$s AS b WHERE b.%3$I = p_entity::%4$s AND b.%5$I <= as_of ORDER BY b.%5$I DESC LIMIT 1; '
                        || 'age_%1$s := extract(epoch FROM as_of - s_%1$s.%5$I); ',
                        i, src.table_name, src.entity_column, lake._column_type(src.table_name, src.entity_column), src.time_column);
                END IF;
            END IF;
            age := format('age_%s', i);
            IF ft.kind = 'lifetime' THEN
                v := format('l_%s', i);
            ELSIF ft.kind = 'batch' THEN
                v := format('s_%s', i);
            ELSIF ft.agg <> 'count_distinct' THEN
                w := array_position(wins, ft.source || '|' || ft.window_length || '|' || ft.grain);
                IF w IS NULL THEN
                    wins := wins || (ft.source || '|' || ft.window_length || '|' || ft.grain);
                    w := cardinality(wins);
                    decl := decl || format('w_%s lake_gen.%I; ', w, src.name || '_agg');
                    body := body || format('w_%1$s := lake_gen.%2$I(p_entity::%3$s, as_of - %4$L::interval, as_of, %5$s, s_%6$s.last_t); ',
                                           w, src.name || '_window', lake._column_type(src.table_name, src.entity_column),
                                           ft.window_length, ft.grain, i);
                END IF;
                v := format('w_%s', w);
            END IF;
            v := CASE ft.agg
                WHEN 'count' THEN v || '.n'
                WHEN 'first_seen' THEN v || '.first_t'
                WHEN 'avg' THEN format('%1$s.%2$I / nullif(%1$s.%3$I, 0)', v, 'sum_' || ft.column_name, 'cnt_' || ft.column_name)
                WHEN 'value' THEN format('%s.%I', v, ft.column_name)
                WHEN 'count_distinct' THEN format('lake_gen.%I(p_entity::%s, as_of - %L::interval, as_of, %s, s_%s.last_t)',
                                                  ft.source || '_distinct_' || ft.column_name,
                                                  lake._column_type(src.table_name, src.entity_column),
                                                  ft.window_length, ft.grain, i)
                ELSE format('%s.%I', v, ft.agg || '_' || ft.column_name) END;
        ELSE
            PERFORM lake._check_expression(format('on-demand feature "%s"', ft.name), ft.expression, ft.value_type, row_type);
            v := ft.expression;
            SELECT array_agg(DISTINCT m[1]) INTO refs FROM regexp_matches(ft.expression, '\mf\.([a-z_][a-z0-9_]*)', 'g') AS m;
            IF EXISTS (SELECT 1 FROM unnest(refs) r WHERE NOT r = ANY (fs.features)) THEN
                RAISE EXCEPTION 'on-demand feature "%" refers to % outside feature set "%"', ft.name, refs, p_name
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            -- An on-demand value is as old as the oldest stored feature it reads.
            SELECT coalesce('greatest(' || string_agg(format('(ages->>%L)::double precision', r), ', ') || ')', '0')
              INTO age FROM unnest(refs) AS r;
        END IF;
        IF ft.kind = 'on_demand' THEN
            -- On-demand features come after every stored one, in set order, so they can read them.
            assign_od := assign_od || format('f.%I := (%s)::%s; ages := ages || jsonb_build_object(%L, %s); ',
                                             ft.name, v, ft.value_type, ft.name, age);
        ELSE
            assign := assign || format('f.%I := coalesce((%s)::%s, %L::%s); ', ft.name, v, ft.value_type, ft.cold_start, ft.value_type);
            ages := ages || format('%L, %s', ft.name, age);
        END IF;
    END LOOP;

    FOR rl IN SELECT * FROM lake.rules WHERE feature_set = p_name AND version = p_version ORDER BY ordinal LOOP
        PERFORM lake._check_expression(format('rule "%s"', rl.name), rl.predicate, 'boolean', row_type);
        flags := flags || format('%L, coalesce((%s)::boolean, false)', rl.name, rl.predicate);
    END LOOP;

    EXECUTE format('DROP FUNCTION IF EXISTS %s(text, timestamptz, jsonb)', fn);
    EXECUTE format($g$
CREATE FUNCTION %1$s(p_entity text, as_of timestamptz DEFAULT now(), request jsonb DEFAULT '{}')
RETURNS lake.vector LANGUAGE plpgsql STABLE AS $f$
DECLARE
    f %2$s;
    ages jsonb;
    %3$s
BEGIN
    IF as_of IS NULL OR p_entity IS NULL THEN
        RAISE EXCEPTION 'entity and as_of are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF as_of < statement_timestamp() - interval '1 hour' THEN
        PERFORM lake.check_horizon(%4$L::text[], as_of);
    END IF;
    %5$s
    %7$s
    ages := %6$s;
    %11$s
    RETURN ROW(%8$L, %9$s, p_entity, as_of, pg_current_snapshot()::text, to_jsonb(f), ages, %10$s)::lake.vector;
END $f$ $g$,
        fn, row_type, decl, srcs, body, lake._jsonb_object_sql(ages), assign, p_name, p_version,
        lake._jsonb_object_sql(flags), assign_od);
    result := (fn || '(text, timestamptz, jsonb)')::regprocedure;
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', result,
                   'one-snapshot read of feature set ' || p_name || ' version ' || p_version || ' (generated from lake.features)');
    UPDATE lake.feature_sets SET read_function = result WHERE name = p_name AND version = p_version;
    RETURN result;
END
$$;
COMMENT ON FUNCTION lake._generate_feature_set(text, int) IS 'generates the STABLE read function of one feature set version from the catalog';

-- ===========================================================================
-- The read contract
-- ===========================================================================

-- Refuses an as-of read that compaction has made inexact.
CREATE FUNCTION lake.check_horizon(p_sources text[], p_as_of timestamptz) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
BEGIN
    SELECT * INTO s FROM lake.sources
     WHERE name = ANY (p_sources) AND compacted_before > p_as_of
     ORDER BY compacted_before DESC LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'as_of % is before the retention horizon % of source "%"', p_as_of, s.compacted_before, s.name
            USING HINT = 'raise lake.settings min_raw_retention to keep raw events longer',
                  ERRCODE = 'data_exception';
    END IF;
END
$$;
COMMENT ON FUNCTION lake.check_horizon(text[], timestamptz) IS 'as-of reads are exact only where the raw events they need are still kept';

-- The read for psql and generic callers: resolves the feature set's generated function (latest version by default).
CREATE FUNCTION lake.read_vector(
    p_feature_set text, p_entity text, p_as_of timestamptz DEFAULT now(), p_request jsonb DEFAULT '{}', p_version int DEFAULT NULL
) RETURNS lake.vector
LANGUAGE plpgsql STABLE AS $$
DECLARE
    fn regprocedure;
    r lake.vector;
BEGIN
    SELECT read_function INTO fn FROM lake.feature_sets
     WHERE name = p_feature_set AND (p_version IS NULL OR version = p_version)
     ORDER BY version DESC LIMIT 1;
    IF fn IS NULL THEN
        RAISE EXCEPTION 'feature set "%"% is not defined', p_feature_set, coalesce(' version ' || p_version, '')
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format('SELECT * FROM %s($1, $2, $3)', fn::oid::regproc) INTO r USING p_entity, p_as_of, p_request;
    RETURN r;
END
$$;
COMMENT ON FUNCTION lake.read_vector(text, text, timestamptz, jsonb, int) IS 'one-snapshot vector read by feature set name; services call the generated function directly to skip the lookup';

-- Everything on the read path that could make a read see more than one snapshot.
CREATE FUNCTION lake.read_path_problems() RETURNS TABLE (object text, problem text)
LANGUAGE plpgsql AS $$
DECLARE
    fs lake.feature_sets;
    ft lake.features;
    rl lake.rules;
    bad text[];
BEGIN
    RETURN QUERY
        SELECT p.oid::regprocedure::text, 'function on the read path is VOLATILE: each of its statements takes a new snapshot'
          FROM pg_proc p
         WHERE p.provolatile = 'v'
           AND (p.oid IN (SELECT read_function FROM lake.feature_sets)
                OR (p.pronamespace = 'lake_gen'::regnamespace AND p.prorettype <> 'trigger'::regtype)
                OR p.oid IN ('lake.read_vector(text, text, timestamptz, jsonb, int)'::regprocedure,
                             'lake.check_horizon(text[], timestamptz)'::regprocedure));
    FOR fs IN SELECT * FROM lake.feature_sets LOOP
        FOR ft IN SELECT * FROM lake.features WHERE name = ANY (fs.features) AND kind = 'on_demand' LOOP
            bad := lake._volatile_calls(ft.expression, ft.value_type, format('lake_gen.%I', 'fs_' || fs.name || '_v' || fs.version));
            IF bad IS NOT NULL THEN
                object := format('feature %s in %s v%s', ft.name, fs.name, fs.version);
                problem := 'calls VOLATILE ' || array_to_string(bad, ', ');
                RETURN NEXT;
            END IF;
        END LOOP;
        FOR rl IN SELECT * FROM lake.rules WHERE feature_set = fs.name AND version = fs.version LOOP
            bad := lake._volatile_calls(rl.predicate, 'boolean', format('lake_gen.%I', 'fs_' || fs.name || '_v' || fs.version));
            IF bad IS NOT NULL THEN
                object := format('rule %s in %s v%s', rl.name, fs.name, fs.version);
                problem := 'calls VOLATILE ' || array_to_string(bad, ', ');
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION lake.read_path_problems() IS 'audit for verify: no function or expression on the read path may be VOLATILE';
