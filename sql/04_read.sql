-- contextlake engine, part 4: the one-snapshot read.
-- Each feature set version gets a generated STABLE PL/pgSQL function that
-- reads every feature, age and rule flag of one entity in the caller's single
-- snapshot. PL/pgSQL keeps its statement plans for the session, so a read
-- costs executions, not planning.

-- ===========================================================================
-- Expression checks (on-demand features and rules)
-- ===========================================================================

-- Volatile functions an expression would call, found in its parse tree (built-ins included).
CREATE OR REPLACE FUNCTION lake._volatile_calls(p_expression text, p_value_type text, p_row_type text) RETURNS text[]
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
CREATE OR REPLACE FUNCTION lake._check_expression(p_what text, p_expression text, p_value_type text, p_row_type text) RETURNS void
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

-- One window feature as an aggregate over the read's rows x that satisfy p_in.
CREATE OR REPLACE FUNCTION lake._window_agg_sql(ft lake.features, p_in text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE ft.agg
        WHEN 'count' THEN format('sum(x.n) FILTER (WHERE %s)', p_in)
        WHEN 'avg' THEN format('sum(x.%1$I) FILTER (WHERE %3$s) / nullif(sum(x.%2$I) FILTER (WHERE %3$s), 0)',
                               'sum__' || ft.column_name, 'cnt__' || ft.column_name, p_in)
        WHEN 'count_distinct' THEN format('count(DISTINCT x.%I) FILTER (WHERE %s)', 'dv__' || ft.column_name, p_in)
        ELSE format('%s(x.%I) FILTER (WHERE %s)', ft.agg, ft.agg || '__' || ft.column_name, p_in) END
$$;
COMMENT ON FUNCTION lake._window_agg_sql(lake.features, text) IS 'code generation: a window feature over tile and raw rows';

-- One statement of a read's windows: the aggregates p_exprs into the variables p_targets, over rows
-- x(g, ts, n, p_cols...): the tile rows p_tiles (NULL: none) and the raw events of p_table (alias e)
-- that satisfy p_raw_pred, written as p_raw_cols.
CREATE OR REPLACE FUNCTION lake._windows_select_sql(
    p_exprs text[], p_targets text[], p_cols text[], p_tiles text, p_raw_cols text, p_table regclass, p_raw_pred text
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT %s INTO %s FROM (%sSELECT %s FROM %s AS e WHERE %s) AS x(g, ts, n%s); ',
                  array_to_string(p_exprs, ', '), array_to_string(p_targets, ', '),
                  coalesce(p_tiles || ' UNION ALL ', ''), p_raw_cols, p_table, p_raw_pred,
                  (SELECT string_agg(', ' || quote_ident(c), '' ORDER BY o) FROM unnest(p_cols) WITH ORDINALITY AS u(c, o)))
$$;
COMMENT ON FUNCTION lake._windows_select_sql(text[], text[], text[], text, text, regclass, text) IS 'code generation: the statement shape shared by the raw-only, serving and historical window reads';

-- The window part of a feature set's read for one event source: one statement computing every
-- window feature of the source into variables v_<position>, raw events only for entities without
-- tiles, complete tiles plus raw edges for the others.
CREATE OR REPLACE FUNCTION lake._windows_sql(p_source text, p_i int, p_features text[], OUT decl text, OUT body text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    src lake.sources;
    ft lake.features;
    c name;
    ct text;
    st regtype;
    key_t text;
    wins text[] := '{}';
    tiled_wins int[] := '{}';  -- the windows with a tile predicate (count_distinct reads its own tiles)
    k int;
    state_cols text[] := '{}';  -- columns a read takes from tiles and raw events, after g, ts and n
    dv_cols text[] := '{}';     -- then one distinct value column per distinct-counted column
    raw_cols text;
    dv_nulls text := '';
    cold_exprs text[] := '{}';
    hot_exprs text[] := '{}';
    targets text[] := '{}';
    tile_pred text[] := '{}';
    raw_pred text[] := '{}';
    raw_pred_serving text[] := '{}';
    edges text := '';
    tiles text;
    dst_branches text := '';
    serving_pred text;
    cold_in text;
    hot_in text;
BEGIN
    SELECT * INTO STRICT src FROM lake.sources WHERE name = p_source;
    key_t := lake._column_base_type(src.table_name, src.entity_column);
    raw_cols := format('-1, e.%I, 1::bigint', src.time_column);
    FOREACH c IN ARRAY src.tracked_columns LOOP
        ct := lake._column_type(src.table_name, c);
        st := lake._sum_type(ct::regtype);
        IF c || ':cnt' = ANY (src.state_aggs) THEN
            state_cols := state_cols || ('cnt__' || c);
            raw_cols := raw_cols || format(', (e.%I IS NOT NULL)::int::bigint', c);
        END IF;
        IF st IS NOT NULL AND c || ':sum' = ANY (src.state_aggs) THEN
            state_cols := state_cols || ('sum__' || c);
            raw_cols := raw_cols || format(', e.%I::%s', c, st);
        END IF;
        IF c || ':minmax' = ANY (src.state_aggs) THEN
            state_cols := state_cols || ARRAY['min__' || c, 'max__' || c];
            raw_cols := raw_cols || format(', e.%1$I, e.%1$I', c);
        END IF;
    END LOOP;
    FOREACH c IN ARRAY src.distinct_columns LOOP
        ct := lake._column_type(src.table_name, c);
        dv_cols := dv_cols || ('dv__' || c);
        dv_nulls := dv_nulls || format(', NULL::%s AS %I', ct, 'dv__' || c);
        raw_cols := raw_cols || format(', e.%I', c);
    END LOOP;

    decl := '';
    FOR ft IN SELECT f.* FROM unnest(p_features) WITH ORDINALITY AS u(n, ord) JOIN lake.features f ON f.name = u.n
               WHERE f.kind = 'window' AND f.source = p_source ORDER BY u.ord LOOP
        k := array_position(wins, ft.window_length || '|' || ft.grain);
        IF k IS NULL THEN
            wins := wins || (ft.window_length || '|' || ft.grain);
            k := cardinality(wins);
            decl := decl || format('lo_%1$s_%2$s timestamptz; a_%1$s_%2$s timestamptz; b_%1$s_%2$s timestamptz; ', p_i, k);
            -- Edges: a = first complete tile after lo (and after the entity got tiles), b = first tile not
            -- entirely at or before as_of (none when as_of is at or after the entity's newest event).
            edges := edges || format(
                'lo_%1$s_%2$s := as_of - %3$L::interval; '
                || 'a_%1$s_%2$s := CASE WHEN s_%1$s.tiled_since = ''-infinity'' THEN date_bin(%4$L, lo_%1$s_%2$s, timestamptz ''epoch'') + %4$L::interval '
                || 'ELSE greatest(date_bin(%4$L, lo_%1$s_%2$s, timestamptz ''epoch''), date_bin(%4$L, s_%1$s.tiled_since, timestamptz ''epoch'')) + %4$L::interval END; '
                || 'b_%1$s_%2$s := CASE WHEN as_of >= s_%1$s.last_t THEN ''infinity'' '
                || 'ELSE date_bin(%4$L, as_of + interval ''1 microsecond'', timestamptz ''epoch'') END; ',
                p_i, k, lake._fixed_interval(ft.window_length), make_interval(secs => ft.grain));
            -- The entity condition sits in every arm so each arm is one range of the (entity, time) index.
            -- Serving reads (as_of at or after the entity's newest event) have no right edge.
            serving_pred := format(
                '(e.%4$I = p_entity::%5$s AND e.%3$I > lo_%1$s_%2$s AND e.%3$I < least(a_%1$s_%2$s, as_of + interval ''1 microsecond''))',
                p_i, k, src.time_column, src.entity_column, key_t);
            raw_pred_serving := raw_pred_serving || serving_pred;
            raw_pred := raw_pred || (serving_pred || format(
                ' OR (e.%4$I = p_entity::%5$s AND e.%3$I >= greatest(a_%1$s_%2$s, b_%1$s_%2$s) AND e.%3$I <= as_of)',
                p_i, k, src.time_column, src.entity_column, key_t));
        END IF;
        IF ft.agg <> 'count_distinct' AND NOT k = ANY (tiled_wins) THEN
            tiled_wins := tiled_wins || k;
            tile_pred := tile_pred || format('(entity = p_entity::%4$s AND grain = %3$s AND tile_start >= a_%1$s_%2$s AND tile_start < b_%1$s_%2$s)', p_i, k, ft.grain, key_t);
        END IF;
        cold_in := format('x.ts > as_of - %L::interval', lake._fixed_interval(ft.window_length));
        hot_in := format('((x.g = %3$s AND x.ts >= a_%1$s_%2$s AND x.ts < b_%1$s_%2$s) OR (x.g = -1 AND ((x.ts > lo_%1$s_%2$s '
                         || 'AND x.ts < least(a_%1$s_%2$s, as_of + interval ''1 microsecond'')) OR x.ts >= greatest(a_%1$s_%2$s, b_%1$s_%2$s))))',
                         p_i, k, ft.grain);
        targets := targets || format('v_%s', array_position(p_features, ft.name));
        decl := decl || format('v_%s %s; ', array_position(p_features, ft.name), ft.value_type);
        cold_exprs := cold_exprs || lake._window_agg_sql(ft, cold_in);
        hot_exprs := hot_exprs || lake._window_agg_sql(ft, hot_in);
        IF ft.agg = 'count_distinct' THEN
            -- The distinct values of its tiles, in the column of its own distinct values (the others NULL).
            dst_branches := dst_branches || format(
                ' UNION ALL SELECT grain, tile_start, %s FROM lake_gen.%I WHERE entity = p_entity::%s AND grain = %s '
                || 'AND tile_start >= a_%s_%s AND tile_start < b_%s_%s',
                (SELECT string_agg(CASE WHEN col = 'dv__' || ft.column_name THEN format('unnest(%I)', 'dst__' || ft.column_name)
                                        ELSE 'NULL' END, ', ' ORDER BY o)
                   FROM unnest('{n}'::text[] || state_cols || dv_cols) WITH ORDINALITY AS u(col, o)),
                p_source || '_tiles', key_t, ft.grain, p_i, k, p_i, k);
        END IF;
    END LOOP;
    IF cardinality(targets) = 0 THEN
        body := '';
        RETURN;
    END IF;
    tiles := format('SELECT grain, tile_start, n%s%s FROM lake_gen.%I WHERE %s%s',
                    (SELECT string_agg(', ' || quote_ident(col), '' ORDER BY o) FROM unnest(state_cols) WITH ORDINALITY AS u(col, o)),
                    dv_nulls, p_source || '_tiles', coalesce(nullif(array_to_string(tile_pred, ' OR '), ''), 'false'), dst_branches);
    body := format(
        'IF s_%1$s.last_t IS NOT NULL THEN IF s_%1$s.tiled_since IS NULL THEN %2$sELSE %3$s'
        || 'IF as_of >= s_%1$s.last_t THEN %4$sELSE %5$sEND IF; '
        || 'END IF; END IF; ',
        p_i,
        lake._windows_select_sql(
            cold_exprs, targets, state_cols || dv_cols, NULL, raw_cols, src.table_name,
            format('e.%1$I = p_entity::%2$s AND e.%3$I > as_of - %4$L::interval AND e.%3$I <= as_of',
                   src.entity_column, key_t, src.time_column,
                   (SELECT lake._fixed_interval(max(window_length)) FROM lake.features
                     WHERE name = ANY (p_features) AND kind = 'window' AND source = p_source))),
        edges,
        lake._windows_select_sql(hot_exprs, targets, state_cols || dv_cols, tiles, raw_cols, src.table_name,
                                 array_to_string(raw_pred_serving, ' OR ')),
        lake._windows_select_sql(hot_exprs, targets, state_cols || dv_cols, tiles, raw_cols, src.table_name,
                                 array_to_string(raw_pred, ' OR ')));
END
$$;
COMMENT ON FUNCTION lake._windows_sql(text, int, text[]) IS 'code generation: every window feature of one source in one statement';

-- The columns of a composite type as "name type, ..." (NULL when there is no such type).
CREATE OR REPLACE FUNCTION lake._composite_columns(p_type text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
      FROM pg_attribute a
     WHERE a.attrelid = (SELECT typrelid FROM pg_type WHERE oid = to_regtype(p_type))
       AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION lake._composite_columns(text) IS 'a composite type''s columns as text, to tell whether a generated type keeps its shape';

-- (Re)generates the read function of one feature set version: its row and vector types and the
-- STABLE function a service calls, replaced in place when its shape is unchanged.
CREATE OR REPLACE FUNCTION lake._generate_feature_set(p_name text, p_version int) RETURNS regprocedure
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fs lake.feature_sets;
    ft lake.features;
    src lake.sources;
    rl lake.rules;
    row_type text := format('lake_gen.%I', 'fs_' || p_name || '_v' || p_version);
    fn text := format('api.%I', 'read_' || p_name || '_v' || p_version);
    vec_type text := format('lake_gen.%I', 'vec_' || p_name || '_v' || p_version);
    decl text := '';
    body text := '';
    values_ text[] := '{}';
    assign_od text := '';
    age_of jsonb := '{}';
    ages text[] := '{}';
    flags text[] := '{}';
    srcs text[] := '{}';
    v text;
    age text;
    i int;
    refs text[];
    w record;
    result regprocedure;
    tag text := '$f$';
    cols text;
BEGIN
    SELECT * INTO STRICT fs FROM lake.feature_sets WHERE name = p_name AND version = p_version;
    -- A read function an earlier release generated under another name (lake_gen, before the contract).
    IF fs.read_function IS NOT NULL AND fs.read_function IS DISTINCT FROM to_regprocedure(fn || '(text, timestamptz, jsonb)') THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s', fs.read_function);
    END IF;
    cols := (SELECT string_agg(format('%I %s', f.name, f.value_type), ', ' ORDER BY u.i)
               FROM unnest(fs.features) WITH ORDINALITY AS u(n, i) JOIN lake.features f ON f.name = u.n);
    -- Types of the same shape are kept, and the read function is replaced in place (same oid): a
    -- service reading it meanwhile never meets a function that is gone. A new shape starts over.
    IF lake._composite_columns(row_type) IS DISTINCT FROM cols
       OR lake._composite_columns(vec_type) IS DISTINCT FROM
          'entity text, as_of timestamp with time zone, snapshot text, ' || cols
          || ', ages double precision[], rules boolean[]' THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s(text, timestamptz, jsonb)', fn);
        EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', row_type);
        EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', vec_type);
        EXECUTE format('CREATE TYPE %s AS (%s)', row_type, cols);
        EXECUTE format('COMMENT ON TYPE %s IS %L', row_type, 'feature values of feature set ' || p_name || ' version ' || p_version);
        -- The typed result: what a service reads (binary, no jsonb to build or parse).
        EXECUTE format('CREATE TYPE %s AS (entity text, as_of timestamptz, snapshot text, %s, ages double precision[], rules boolean[])',
                       vec_type, cols);
        EXECUTE format('COMMENT ON TYPE %s IS %L', vec_type,
                       'one-snapshot read of feature set ' || p_name || ' version ' || p_version
                       || ': values, ages in seconds (feature order), rule flags (rule order), snapshot');
    END IF;

    FOR ft IN SELECT f.* FROM unnest(fs.features) WITH ORDINALITY AS u(n, ord) JOIN lake.features f ON f.name = u.n ORDER BY u.ord LOOP
        IF ft.kind IN ('lifetime', 'window', 'batch') THEN
            SELECT * INTO STRICT src FROM lake.sources WHERE name = ft.source;
            i := array_position(srcs, ft.source);
            IF i IS NULL THEN
                srcs := srcs || ft.source;
                i := cardinality(srcs);
                IF src.kind = 'events' THEN
                    -- Per event source: the lifetime row (last_t: the entity's newest event), the lifetime
                    -- aggregate as of as_of, the age of the newest event at or before as_of, the windows.
                    decl := decl || format('s_%1$s lake_gen.%2$I; l_%1$s lake_gen.%2$I; age_%1$s double precision; ',
                                           i, src.name || '_agg');
                    body := body || format(
                        'SELECT %1$s INTO s_%2$s FROM lake_gen.%3$I WHERE entity = p_entity::%4$s AND grain = 0 AND tile_start = ''-infinity''; '
                        || 'IF s_%2$s.last_t IS NULL OR s_%2$s.last_t <= as_of THEN l_%2$s := s_%2$s; '
                        || 'ELSE l_%2$s := lake_gen.%5$I(p_entity::%4$s, as_of); END IF; '
                        || 'age_%2$s := extract(epoch FROM as_of - l_%2$s.last_t); ',
                        (lake._state_sql(src.name)).agg_names, i, src.name || '_tiles',
                        lake._column_base_type(src.table_name, src.entity_column), src.name || '_lifetime_at');
                    w := lake._windows_sql(src.name, i, fs.features);
                    decl := decl || coalesce(w.decl, '');
                    body := body || coalesce(w.body, '');
                ELSE
                    decl := decl || format('s_%1$s %2$s; age_%1$s double precision; ', i, src.table_name);
                    body := body || format(
                        'SELECT * INTO s_%1$s FROM %2$s AS b WHERE b.%3$I = p_entity::%4$s AND b.%5$I <= as_of ORDER BY b.%5$I DESC LIMIT 1; '
                        || 'age_%1$s := extract(epoch FROM as_of - s_%1$s.%5$I); ',
                        i, src.table_name, src.entity_column, lake._column_base_type(src.table_name, src.entity_column), src.time_column);
                END IF;
            END IF;
            age := format('age_%s', i);
            v := CASE WHEN ft.kind = 'window' THEN format('v_%s', array_position(fs.features, ft.name))
                      WHEN ft.kind = 'batch' THEN format('s_%s.%I', i, ft.column_name)
                      ELSE CASE ft.agg
                          WHEN 'count' THEN format('l_%s.n', i)
                          WHEN 'first_seen' THEN format('l_%s.first_t', i)
                          WHEN 'avg' THEN format('l_%1$s.%2$I / nullif(l_%1$s.%3$I, 0)', i, 'sum__' || ft.column_name, 'cnt__' || ft.column_name)
                          ELSE format('l_%s.%I', i, ft.agg || '__' || ft.column_name) END END;
            values_ := values_ || format('coalesce((%s)::%s, %L::%s)', v, ft.value_type, ft.cold_start, ft.value_type);
        ELSE
            PERFORM lake._check_expression(format('on-demand feature "%s"', ft.name), ft.expression, ft.value_type, row_type);
            SELECT array_agg(DISTINCT m[1]) INTO refs FROM regexp_matches(ft.expression, '\mf\.([a-z_][a-z0-9_]*)', 'g') AS m;
            IF EXISTS (SELECT 1 FROM unnest(refs) r WHERE NOT age_of ? r) THEN
                RAISE EXCEPTION 'on-demand feature "%" refers to % which must come before it in feature set "%"', ft.name, refs, p_name
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            -- An on-demand value is as old as the oldest stored feature it reads.
            SELECT coalesce('greatest(' || string_agg(age_of->>r, ', ') || ')', '0') INTO age FROM unnest(refs) AS r;
            values_ := values_ || format('NULL::%s', ft.value_type);
            assign_od := assign_od || format('f.%I := (%s)::%s; ', ft.name, ft.expression, ft.value_type);
        END IF;
        age_of := age_of || jsonb_build_object(ft.name, age);
        ages := ages || age;
    END LOOP;

    FOR rl IN SELECT * FROM lake.rules WHERE feature_set = p_name AND version = p_version ORDER BY ordinal LOOP
        PERFORM lake._check_expression(format('rule "%s"', rl.name), rl.predicate, 'boolean', row_type);
        flags := flags || format('coalesce((%s)::boolean, false)', rl.predicate);
    END LOOP;

    -- The body's dollar quote: one that no user expression of the set contains.
    WHILE position(tag IN assign_od || array_to_string(flags, ' ')) > 0 LOOP
        tag := format('$f%s$', length(tag) - 2);
    END LOOP;
    EXECUTE format($g$
CREATE OR REPLACE FUNCTION %1$s(p_entity text, as_of timestamptz DEFAULT now(), request jsonb DEFAULT '{}')
RETURNS %12$s LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %9$s
DECLARE
    f %2$s;
    %3$s
BEGIN
    IF as_of IS NULL OR p_entity IS NULL THEN
        RAISE EXCEPTION 'entity and as_of are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF as_of < statement_timestamp() - interval '1 hour' THEN
        PERFORM lake.check_horizon(%4$L::text[], as_of);
    END IF;
    %5$s
    SELECT %6$s INTO f;
    %7$s
    RETURN ROW(p_entity, as_of, pg_current_snapshot()::text, %8$s,
               ARRAY[%10$s]::double precision[], ARRAY[%11$s]::boolean[])::%12$s;
END %9$s $g$,
        fn, row_type, decl, srcs, body, array_to_string(values_, ', '), assign_od,
        (SELECT string_agg(format('f.%I', x), ', ' ORDER BY o) FROM unnest(fs.features) WITH ORDINALITY AS u(x, o)),
        tag, array_to_string(ages, ', '), array_to_string(flags, ', '), vec_type);
    result := (fn || '(text, timestamptz, jsonb)')::regprocedure;
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', result,
                   'one-snapshot read of feature set ' || p_name || ' version ' || p_version || ' (generated from lake.features)');
    UPDATE lake.feature_sets SET read_function = result WHERE name = p_name AND version = p_version;
    -- The read is part of the contract: the roles that read vectors may call it (default privileges of
    -- schema api, roles.sql).
    -- Running services drop what they cached of this version when the transaction commits.
    PERFORM pg_notify('lake_catalog', p_name || ':' || p_version);
    RETURN result;
END
$$;
COMMENT ON FUNCTION lake._generate_feature_set(text, int) IS 'generates the STABLE read function of one feature set version from the catalog';

-- ===========================================================================
-- The read contract
-- ===========================================================================

-- Refuses an as-of read that compaction has made inexact.
CREATE OR REPLACE FUNCTION lake.check_horizon(p_sources text[], p_as_of timestamptz) RETURNS void
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

-- The read for psql and generic callers: resolves the feature set's generated function (latest version
-- by default) and returns the vector with values, ages and rule flags keyed by name.
CREATE OR REPLACE FUNCTION lake.read_vector(
    p_feature_set text, p_entity text, p_as_of timestamptz DEFAULT now(), p_request jsonb DEFAULT '{}', p_version int DEFAULT NULL
) RETURNS lake.vector
LANGUAGE plpgsql STABLE AS $$
DECLARE
    fs lake.feature_sets;
    r lake.vector;
BEGIN
    SELECT * INTO fs FROM lake.feature_sets
     WHERE name = p_feature_set AND (p_version IS NULL OR version = p_version)
     ORDER BY version DESC LIMIT 1;
    IF fs.read_function IS NULL THEN
        RAISE EXCEPTION 'feature set "%"% is not defined', p_feature_set, coalesce(' version ' || p_version, '')
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format(
        'SELECT %L, %s, v.entity, v.as_of, v.snapshot, to_jsonb(v) - ''entity'' - ''as_of'' - ''snapshot'' - ''ages'' - ''rules'', '
        || '(SELECT jsonb_object_agg(n, a) FROM unnest($4::text[], v.ages) AS x(n, a)), '
        || '(SELECT coalesce(jsonb_object_agg(n, h), ''{}'') FROM unnest($5::text[], v.rules) AS x(n, h)) '
        || 'FROM %s($1, $2, $3) AS v', fs.name, fs.version, fs.read_function::oid::regproc)
      INTO r
      USING p_entity, p_as_of, p_request, fs.features,
            ARRAY(SELECT name FROM lake.rules WHERE feature_set = fs.name AND version = fs.version ORDER BY ordinal);
    RETURN r;
END
$$;
COMMENT ON FUNCTION lake.read_vector(text, text, timestamptz, jsonb, int) IS 'one-snapshot vector read by feature set name; services call the generated function directly to skip the lookup';

-- Everything on the read path that could make a read see more than one snapshot.
CREATE OR REPLACE FUNCTION lake.read_path_problems() RETURNS TABLE (object text, problem text)
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
