-- contextlake engine, part 2: per-source feature state.
-- Every event source gets one tile table in lake_gen: for each entity one
-- lifetime row (grain 0) and one row per time tile of every grain it keeps.
-- A statement-level trigger folds each inserted batch into those rows in the
-- landing transaction; generated STABLE helpers read any window exactly.

-- ===========================================================================
-- Small helpers
-- ===========================================================================

-- Type of a column of a table, or a clear error naming the table's columns.
CREATE OR REPLACE FUNCTION lake._column_type(p_table regclass, p_column name) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t text;
BEGIN
    SELECT format_type(a.atttypid, a.atttypmod) INTO t
      FROM pg_attribute a
     WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF t IS NULL THEN
        RAISE EXCEPTION 'column "%" does not exist in source table %', p_column, p_table
            USING HINT = 'columns are: ' || (SELECT string_agg(attname, ', ' ORDER BY attnum)
                                                FROM pg_attribute
                                               WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped),
                  ERRCODE = 'undefined_column';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION lake._column_type(regclass, name) IS 'column type (with its modifier, e.g. character(2)) that fails with the list of real columns, for definition errors';

-- The same type without its modifier: parameters are cast to it, so a too-long key is no key
-- rather than a silently truncated one.
CREATE OR REPLACE FUNCTION lake._column_base_type(p_table regclass, p_column name) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format_type(lake._column_type(p_table, p_column)::regtype, NULL)
$$;
COMMENT ON FUNCTION lake._column_base_type(regclass, name) IS 'cast target for entity keys in generated reads';

-- An interval as a fixed number of seconds: subtracting '1 day' from a timestamptz follows the
-- session's time zone across daylight saving changes, subtracting '86400 seconds' does not.
CREATE OR REPLACE FUNCTION lake._fixed_interval(p_interval interval) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT make_interval(secs => extract(epoch FROM p_interval))
$$;
COMMENT ON FUNCTION lake._fixed_interval(interval) IS 'windows are exact durations, whatever the session TimeZone';

-- Whether sum() applies to the type, and the type the state keeps the sum in.
CREATE OR REPLACE FUNCTION lake._sum_type(p_type regtype) RETURNS regtype
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_type IN ('real'::regtype, 'double precision'::regtype) THEN 'double precision'::regtype
        WHEN p_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype) THEN 'numeric'::regtype
    END
$$;
COMMENT ON FUNCTION lake._sum_type(regtype) IS 'numeric types are summed (floats as double precision, integers and numeric as numeric); NULL means not summable';

-- Whether min()/max() exist for the type.
CREATE OR REPLACE FUNCTION lake._has_minmax(p_type regtype) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
                    WHERE p.proname = 'min' AND p.pronamespace = 'pg_catalog'::regnamespace
                      AND p.proargtypes[0] = p_type)
$$;
COMMENT ON FUNCTION lake._has_minmax(regtype) IS 'min and max are kept only for types that have them';

-- Start of the tile of p_grain seconds that holds p_time (grain 0: the lifetime row).
CREATE OR REPLACE FUNCTION lake.tile_start(p_time timestamptz, p_grain int) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_grain = 0 THEN '-infinity'::timestamptz
                ELSE date_bin(make_interval(secs => p_grain), p_time, timestamptz 'epoch') END
$$;
COMMENT ON FUNCTION lake.tile_start(timestamptz, int) IS 'tiles are aligned to the Unix epoch so every grain nests in the coarser ones';

-- The tile grain a window is read from: the largest standard grain with at least 4 tiles in the window.
CREATE OR REPLACE FUNCTION lake.grain_for(p_window interval) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(max(g), 1)
      FROM unnest('{1,10,60,300,3600,86400}'::int[]) AS g
     WHERE extract(epoch FROM p_window) >= 4 * g
$$;
COMMENT ON FUNCTION lake.grain_for(interval) IS 'bounds both the tiles a window sums (few) and the raw events its edges scan (at most one tile wide)';

-- ===========================================================================
-- Code generation: the column lists of one source's state
-- ===========================================================================
DROP TYPE IF EXISTS lake._state_sql CASCADE;
CREATE TYPE lake._state_sql AS (
    agg_columns  text,  -- column definitions of the aggregate composite
    agg_names    text,  -- column names of the aggregate composite
    dst_columns  text,  -- column definitions of the distinct-value arrays ('' if none)
    dst_names    text,  -- their names, each with a leading comma ('' if none)
    dst_nulls    text,  -- NULL for each of them, each with a leading comma ('' if none)
    last_window  text,  -- window functions (alias e, window lake_w) picking each entity's last values
    fold_life    text,  -- aggregates folding raw events (alias e, with last_window columns) into a lifetime row, but tiled_since
    fold_tiles   text,  -- aggregates folding raw events (alias e) into a tile row (no last values)
    fold_dst     text,  -- distinct-array aggregates over raw events, leading comma
    raw_values   text,  -- one raw event (alias e) written as the values of a state row, but tiled_since
    raw_as_state text,  -- one raw event (alias e) written as a state row
    merge_state  text,  -- aggregates that merge state rows (alias x) into one
    on_conflict  text   -- SET list adding an excluded state row to a stored one (alias t)
);

CREATE OR REPLACE FUNCTION lake._state_sql(p_source text) RETURNS lake._state_sql
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
    r lake._state_sql;
    c name;
    ct text;
    st regtype;
    t text;
    id_t text;
    ord_x text := ' ORDER BY x.last_t DESC, x.last_id DESC))[1]';
    newer text := 'CASE WHEN (excluded.last_t, excluded.last_id) > (t.last_t, t.last_id) THEN excluded.%1$I ELSE t.%1$I END';
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    t := format('e.%I', s.time_column);
    id_t := lake._column_type(s.table_name, s.id_column);
    r.agg_columns := format('n bigint, first_t timestamptz, last_t timestamptz, last_id %s', id_t);
    r.agg_names := 'n, first_t, last_t, last_id';
    r.last_window := format('first_value(e.%I) OVER lake_w AS lake_last_id', s.id_column);
    -- Within an entity every row carries the same last values (window functions), so min() picks them.
    r.fold_life := format('count(*), min(%s), max(%s), %s', t, t,
                          CASE WHEN lake._has_minmax(id_t::regtype) THEN 'min(e.lake_last_id)' ELSE '(array_agg(e.lake_last_id))[1]' END);
    r.fold_tiles := format('count(*), min(%s), max(%s), NULL::%s', t, t, id_t);
    r.raw_values := format('1::bigint, %s, %s, e.%I', t, t, s.id_column);
    r.merge_state := 'sum(x.n)::bigint, min(x.first_t), max(x.last_t), (array_agg(x.last_id' || ord_x;
    r.on_conflict := 'n = t.n + excluded.n, first_t = least(t.first_t, excluded.first_t), '
        || 'last_t = greatest(t.last_t, excluded.last_t), last_id = ' || format(newer, 'last_id');

    FOREACH c IN ARRAY s.tracked_columns LOOP
        ct := lake._column_type(s.table_name, c);
        st := lake._sum_type(ct::regtype);
        IF c || ':cnt' = ANY (s.state_aggs) THEN
            r.agg_columns := r.agg_columns || format(', %I bigint', 'cnt__' || c);
            r.agg_names := r.agg_names || format(', %I', 'cnt__' || c);
            r.fold_life := r.fold_life || format(', count(e.%I)', c);
            r.fold_tiles := r.fold_tiles || format(', count(e.%I)', c);
            r.raw_values := r.raw_values || format(', (e.%I IS NOT NULL)::int::bigint', c);
            r.merge_state := r.merge_state || format(', sum(x.%I)::bigint', 'cnt__' || c);
            r.on_conflict := r.on_conflict || format(', %1$I = t.%1$I + excluded.%1$I', 'cnt__' || c);
        END IF;
        IF st IS NOT NULL AND c || ':sum' = ANY (s.state_aggs) THEN
            r.agg_columns := r.agg_columns || format(', %I %s', 'sum__' || c, st);
            r.agg_names := r.agg_names || format(', %I', 'sum__' || c);
            r.fold_life := r.fold_life || format(', sum(e.%I)::%s', c, st);
            r.fold_tiles := r.fold_tiles || format(', sum(e.%I)::%s', c, st);
            r.raw_values := r.raw_values || format(', e.%I::%s', c, st);
            r.merge_state := r.merge_state || format(', sum(x.%I)', 'sum__' || c);
            r.on_conflict := r.on_conflict || format(
                ', %1$I = CASE WHEN t.%1$I IS NULL THEN excluded.%1$I WHEN excluded.%1$I IS NULL THEN t.%1$I ELSE t.%1$I + excluded.%1$I END',
                'sum__' || c);
        END IF;
        IF c || ':minmax' = ANY (s.state_aggs) THEN
            r.agg_columns := r.agg_columns || format(', %I %s, %I %s', 'min__' || c, ct, 'max__' || c, ct);
            r.agg_names := r.agg_names || format(', %I, %I', 'min__' || c, 'max__' || c);
            r.fold_life := r.fold_life || format(', min(e.%1$I), max(e.%1$I)', c);
            r.fold_tiles := r.fold_tiles || format(', min(e.%1$I), max(e.%1$I)', c);
            r.raw_values := r.raw_values || format(', e.%1$I, e.%1$I', c);
            r.merge_state := r.merge_state || format(', min(x.%I), max(x.%I)', 'min__' || c, 'max__' || c);
            r.on_conflict := r.on_conflict || format(', %1$I = least(t.%1$I, excluded.%1$I), %2$I = greatest(t.%2$I, excluded.%2$I)',
                                                     'min__' || c, 'max__' || c);
        END IF;
        IF c || ':last' = ANY (s.state_aggs) THEN
            r.agg_columns := r.agg_columns || format(', %I %s', 'last__' || c, ct);
            r.agg_names := r.agg_names || format(', %I', 'last__' || c);
            r.last_window := r.last_window || format(', first_value(e.%I) OVER lake_w AS %I', c, 'lake_last_' || c);
            r.fold_life := r.fold_life || format(CASE WHEN lake._has_minmax(ct::regtype) THEN ', min(e.%I)' ELSE ', (array_agg(e.%I))[1]' END,
                                                 'lake_last_' || c);
            r.fold_tiles := r.fold_tiles || format(', NULL::%s', ct);
            r.raw_values := r.raw_values || format(', e.%I', c);
            r.merge_state := r.merge_state || format(', (array_agg(x.%I%s', 'last__' || c, ord_x);
            r.on_conflict := r.on_conflict || ', ' || format('%I = ', 'last__' || c) || format(newer, 'last__' || c);
        END IF;
    END LOOP;
    -- Last in the composite: from when the entity's tiles are complete (lifetime rows only).
    r.agg_columns := r.agg_columns || ', tiled_since timestamptz';
    r.agg_names := r.agg_names || ', tiled_since';
    r.fold_tiles := r.fold_tiles || ', NULL::timestamptz';
    r.raw_as_state := r.raw_values || ', NULL::timestamptz';
    r.merge_state := r.merge_state || ', NULL::timestamptz';

    r.dst_columns := '';
    r.dst_names := '';
    r.dst_nulls := '';
    r.fold_dst := '';
    FOREACH c IN ARRAY s.distinct_columns LOOP
        ct := lake._column_type(s.table_name, c);
        r.dst_columns := r.dst_columns || format(', %I %s[]', 'dst__' || c, ct);
        r.dst_names := r.dst_names || format(', %I', 'dst__' || c);
        r.dst_nulls := r.dst_nulls || ', NULL';
        r.fold_dst := r.fold_dst || format(', array_agg(DISTINCT e.%1$I) FILTER (WHERE e.%1$I IS NOT NULL)', c);
        r.on_conflict := r.on_conflict || format(
            ', %1$I = CASE WHEN excluded.%1$I IS NULL THEN t.%1$I WHEN t.%1$I IS NULL THEN excluded.%1$I '
            || 'WHEN excluded.%1$I <@ t.%1$I THEN t.%1$I ELSE ARRAY(SELECT DISTINCT v FROM unnest(t.%1$I || excluded.%1$I) AS v) END',
            'dst__' || c);
    END LOOP;
    RETURN r;
END
$$;
COMMENT ON FUNCTION lake._state_sql(text) IS 'SQL fragments for one source''s state, shared by the trigger, compaction, verify and the read helpers so they cannot drift apart';

-- ===========================================================================
-- Code generation: the folds that maintain state
-- ===========================================================================

-- The CTE lake_e: the events of p_from, each carrying its entity's last values (one sort, window functions).
CREATE OR REPLACE FUNCTION lake._last_values_cte(p_source text, p_from text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    RETURN format('lake_e AS (SELECT e.*, %1$s FROM %2$s AS e WINDOW lake_w AS (PARTITION BY e.%3$I ORDER BY e.%4$I DESC, e.%5$I DESC))',
                  (lake._state_sql(p_source)).last_window, p_from, s.entity_column, s.time_column, s.id_column);
END
$$;
COMMENT ON FUNCTION lake._last_values_cte(text, text) IS 'code generation: input of every lifetime fold';

-- The landing bookkeeping of a lifetime upsert (alias t, excluded): events landed today, and the
-- switch to tiles once tile_threshold of them land in one day. Tiles are complete from the newest
-- event time the entity had before the switch.
CREATE OR REPLACE FUNCTION lake._land_set_sql(p_threshold int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format(', land_day = excluded.land_day, land_n = %1$s, '
                  || 'tiled_since = CASE WHEN t.tiled_since IS NOT NULL THEN t.tiled_since '
                  || 'WHEN %1$s >= %2$s THEN coalesce(t.last_t, ''-infinity'') END',
                  'CASE WHEN t.land_day = excluded.land_day THEN t.land_n + excluded.land_n ELSE excluded.land_n END',
                  p_threshold)
$$;
COMMENT ON FUNCTION lake._land_set_sql(int) IS 'code generation: shared by the batch and the single-row maintenance';

-- Folds lake_e into one lifetime-style row per entity of p_target at p_grain (0: lifetime, -1: archive
-- of compacted events). With p_land, also the hot-entity bookkeeping of landing.
CREATE OR REPLACE FUNCTION lake._fold_life_sql(p_source text, p_target text, p_grain int, p_land boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
    q lake._state_sql := lake._state_sql(p_source);
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    RETURN format(
        'INSERT INTO %1$s AS t (entity, grain, tile_start, %2$s%3$s%4$s) '
        || 'SELECT e.%5$I, %6$s, ''-infinity''::timestamptz, %7$s, %8$s%9$s%10$s FROM lake_e AS e GROUP BY e.%5$I ORDER BY e.%5$I '
        || 'ON CONFLICT (entity, grain, tile_start) DO UPDATE SET %11$s%12$s',
        p_target, q.agg_names, q.dst_names, CASE WHEN p_land THEN ', land_day, land_n' ELSE '' END,
        s.entity_column, p_grain, q.fold_life,
        CASE WHEN p_land THEN format('CASE WHEN count(*) >= %s THEN ''-infinity''::timestamptz END', s.tile_threshold)
             ELSE 'NULL::timestamptz' END,
        q.dst_nulls, CASE WHEN p_land THEN ', (now() AT TIME ZONE ''UTC'')::date, count(*)' ELSE '' END,
        q.on_conflict,
        CASE WHEN p_land THEN lake._land_set_sql(s.tile_threshold) ELSE '' END);
END
$$;
COMMENT ON FUNCTION lake._fold_life_sql(text, text, int, boolean) IS 'lifetime fold: landing (with the hot-entity bookkeeping), compaction (into the archive row) and verify';

-- Folds the events of p_from into tile rows of every grain; with p_hot_only only for entities the
-- statement's lifetime upsert (CTE lake_life) reports as tiled.
CREATE OR REPLACE FUNCTION lake._fold_tiles_sql(p_source text, p_from text, p_target text, p_hot_only boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
    q lake._state_sql := lake._state_sql(p_source);
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    -- Grouped per (entity, grain, tile) and upserted in key order: a batch costs one upsert per
    -- touched row, and concurrent batches lock rows in the same order (no deadlocks).
    RETURN format(
        'INSERT INTO %1$s AS t (entity, grain, tile_start, %2$s%3$s) '
        || 'SELECT e.%4$I, g.grain, lake.tile_start(e.%5$I, g.grain), %6$s%7$s '
        || 'FROM %8$s AS e %9$s CROSS JOIN unnest(%10$L::int[]) AS g(grain) '
        || 'GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 '
        || 'ON CONFLICT (entity, grain, tile_start) DO UPDATE SET %11$s',
        p_target, q.agg_names, q.dst_names, s.entity_column, s.time_column, q.fold_tiles, q.fold_dst, p_from,
        CASE WHEN p_hot_only THEN format('JOIN lake_life ON lake_life.entity = e.%I AND lake_life.tiled_since IS NOT NULL',
                                         s.entity_column) ELSE '' END,
        s.grains, q.on_conflict);
END
$$;
COMMENT ON FUNCTION lake._fold_tiles_sql(text, text, text, boolean) IS 'tile fold: the trigger runs it for hot entities only, verify for all';

-- The one statement that maintains a source's state from a batch of landed events.
CREATE OR REPLACE FUNCTION lake._land_sql(p_source text, p_from text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    target text := format('lake_gen.%I', p_source || '_tiles');
    life text := lake._fold_life_sql(p_source, target, 0, true);
BEGIN
    IF cardinality((SELECT grains FROM lake.sources WHERE name = p_source)) = 0 THEN
        -- No windows, no tiles: the lifetime upsert alone (a statement PL/pgSQL can run as is).
        RETURN 'WITH ' || lake._last_values_cte(p_source, p_from) || ' ' || life;
    END IF;
    -- The lifetime upsert returns each entity's tiled_since: the tile fold runs for the tiled ones.
    RETURN 'WITH ' || lake._last_values_cte(p_source, p_from) || ', lake_life AS (' || life || ' RETURNING entity, tiled_since) '
           || lake._fold_tiles_sql(p_source, p_from, target, true);
END
$$;
COMMENT ON FUNCTION lake._land_sql(text, text) IS 'the set-wise statement the maintenance trigger runs per INSERT/COPY statement';

-- The maintenance of one landed event (alias e, read from p_from): a direct upsert of its lifetime row
-- (no sort, no grouping) into the trigger function's variable tiled, then its tiles when the entity has them.
CREATE OR REPLACE FUNCTION lake._land_one_sql(p_source text, p_from text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
    q lake._state_sql := lake._state_sql(p_source);
    target text := format('lake_gen.%I', p_source || '_tiles');
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    RETURN format(
        'INSERT INTO %1$s AS t (entity, grain, tile_start, %2$s%3$s, land_day, land_n) '
        || 'SELECT e.%4$I, 0, ''-infinity''::timestamptz, %5$s, %6$s%7$s, (now() AT TIME ZONE ''UTC'')::date, 1 FROM %8$s AS e '
        || 'ON CONFLICT (entity, grain, tile_start) DO UPDATE SET %9$s%10$s '
        || 'RETURNING tiled_since INTO tiled; IF tiled IS NOT NULL THEN %11$s; END IF;',
        target, q.agg_names, q.dst_names, s.entity_column, q.raw_values,
        CASE WHEN s.tile_threshold <= 1 THEN '''-infinity''::timestamptz' ELSE 'NULL::timestamptz' END,
        q.dst_nulls, p_from, q.on_conflict, lake._land_set_sql(s.tile_threshold),
        CASE WHEN cardinality(s.grains) > 0 THEN lake._fold_tiles_sql(p_source, p_from, target, false) ELSE 'NULL' END);
END
$$;
COMMENT ON FUNCTION lake._land_one_sql(text, text) IS 'code generation: the single-event maintenance, shared by the statement trigger''s fast path and the replica row trigger';

-- A maintenance trigger function of a source. Statement-level (<source>_maintain, reads the transition
-- table new_rows): the single-event maintenance for a single-row statement, the set-wise statement for a
-- batch. Row-level (<source>_maintain_row, the replica twin): the single-event maintenance of NEW.
CREATE OR REPLACE FUNCTION lake._maintain_function_sql(p_source text, p_row_level boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN format(
        'CREATE OR REPLACE FUNCTION lake_gen.%1$I() RETURNS trigger LANGUAGE plpgsql SET work_mem = %2$L AS $f$ '
        || 'DECLARE tiled timestamptz;%3$s BEGIN %4$s RETURN NULL; END $f$; '
        || 'COMMENT ON FUNCTION lake_gen.%1$I() IS %5$L',
        p_source || CASE WHEN p_row_level THEN '_maintain_row' ELSE '_maintain' END,
        lake.setting('maintenance_work_mem'),
        CASE WHEN p_row_level THEN '' ELSE ' rows int;' END,
        CASE WHEN p_row_level THEN lake._land_one_sql(p_source, '(SELECT (NEW).*)')
             ELSE format('SELECT count(*) INTO rows FROM (SELECT FROM new_rows LIMIT 2) AS x; '
                         || 'IF rows = 1 THEN %s ELSIF rows > 1 THEN %s; END IF;',
                         lake._land_one_sql(p_source, 'new_rows'), lake._land_sql(p_source, 'new_rows')) END,
        'folds the events of one INSERT/COPY statement into ' || p_source || ' state, in the same transaction');
END
$$;
COMMENT ON FUNCTION lake._maintain_function_sql(text, boolean) IS 'code generation: the trigger function that keeps a source''s state';

-- ===========================================================================
-- Code generation: state table, maintenance trigger, lifetime helper
-- ===========================================================================

-- (Re)creates the state of an event source (its aggregate type and state table), then its code, and
-- rebuilds the state from the landing table.
CREATE OR REPLACE FUNCTION lake._generate_source(p_source text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s lake.sources;
    q lake._state_sql := lake._state_sql(p_source);
    key_t text;
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    key_t := lake._column_type(s.table_name, s.entity_column);

    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'lake_maintain_' || p_source, s.table_name);
    EXECUTE format('DROP TABLE IF EXISTS lake_gen.%I', p_source || '_tiles');
    EXECUTE format('DROP TYPE IF EXISTS lake_gen.%I CASCADE', p_source || '_agg');

    EXECUTE format('CREATE TYPE lake_gen.%I AS (%s)', p_source || '_agg', q.agg_columns);
    EXECUTE format('COMMENT ON TYPE lake_gen.%I IS %L', p_source || '_agg',
                   'aggregate of a set of ' || p_source || ' events: the shape of one state row and of any window read');
    EXECUTE format(
        'CREATE TABLE lake_gen.%I (entity %s NOT NULL, grain int NOT NULL, tile_start timestamptz NOT NULL, %s%s, '
        || 'land_day date, land_n bigint, PRIMARY KEY (entity, grain, tile_start)) WITH (fillfactor = 70)',
        p_source || '_tiles', key_t, q.agg_columns, q.dst_columns);
    EXECUTE format('COMMENT ON TABLE lake_gen.%I IS %L', p_source || '_tiles',
                   'state of source ' || p_source || ': per entity a lifetime row (grain 0), an archive row of compacted events '
                   || '(grain -1) and, for entities past the tile threshold, time tiles of grains '
                   || coalesce(nullif(array_to_string(s.grains, ', '), ''), '(none)') || ' s; maintained by trigger lake_maintain_' || p_source);
    PERFORM lake._generate_source_code(p_source);

    -- Rebuild state from the events already landed, as if they had landed in one statement.
    EXECUTE lake._land_sql(p_source, s.table_name::text);
END
$$;
COMMENT ON FUNCTION lake._generate_source(text) IS 'generates the state table, trigger and lifetime helper of an event source from the catalog, and rebuilds its state from raw events';

-- (Re)creates the code of an event source over its existing state: maintenance function and trigger,
-- append-only guard, lifetime helper. The state is kept, so an engine upgrade can run it on any lake.
CREATE OR REPLACE FUNCTION lake._generate_source_code(p_source text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s lake.sources;
    q lake._state_sql := lake._state_sql(p_source);
    key_t text;
    trig text := 'lake_maintain_' || p_source;
    guard text := 'lake_append_only_' || p_source;
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    key_t := lake._column_type(s.table_name, s.entity_column);

    -- Maintenance: one statement-level trigger, so a batch of N rows is one set-wise statement. The
    -- function is replaced in place; a trigger is created only where it is missing, since creating one
    -- locks the landing table against inserts until the transaction ends (an upgrade must not).
    EXECUTE lake._maintain_function_sql(p_source, false);
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = s.table_name AND tgname = trig) THEN
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lake_gen.%I()',
            trig, s.table_name, p_source || '_maintain');
        EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', trig, s.table_name,
                       'keeps the features of source ' || p_source || ' in the transaction that lands its events');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = s.table_name AND tgname = guard) THEN
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION lake._refuse_change()',
            guard, s.table_name);
        EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', guard, s.table_name,
                       'landing tables are append-only: the state is a fold of every event landed');
    END IF;

    -- Lifetime read as of an earlier time: the archive of compacted events plus the raw events up to as_of.
    EXECUTE format($g$
CREATE OR REPLACE FUNCTION lake_gen.%1$I(p_entity %2$s, p_as_of timestamptz)
RETURNS lake_gen.%3$I LANGUAGE plpgsql STABLE AS $f$
DECLARE
    r lake_gen.%3$I;
BEGIN
    SELECT %4$s INTO r FROM (
        SELECT %5$s FROM lake_gen.%6$I WHERE entity = p_entity AND grain = -1 AND tile_start = '-infinity'
        UNION ALL
        SELECT %7$s FROM %8$s AS e WHERE e.%9$I = p_entity AND e.%10$I <= p_as_of
    ) AS x;
    RETURN r;
END $f$ $g$,
        p_source || '_lifetime_at', key_t, p_source || '_agg', q.merge_state, q.agg_names, p_source || '_tiles',
        q.raw_as_state, s.table_name, s.entity_column, s.time_column);
    EXECUTE format('COMMENT ON FUNCTION lake_gen.%I(%s, timestamptz) IS %L', p_source || '_lifetime_at', key_t,
                   'aggregate of every ' || p_source || ' event of one entity up to as_of (reads before the newest event)');
END
$$;
COMMENT ON FUNCTION lake._generate_source_code(text) IS 'generates the maintenance trigger, append-only guard and lifetime helper of an event source over its kept state';

-- Landing tables are append-only: state is derived from every row ever landed.
CREATE OR REPLACE FUNCTION lake._refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('lake.compacting', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% on landing table %.% is refused: landing tables are append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING HINT = 'land a correcting event instead; old events are removed only by lake.compact()',
              ERRCODE = 'prohibited_sql_statement_attempted';
END
$$;
COMMENT ON FUNCTION lake._refuse_change() IS 'keeps landing tables append-only so maintained state always equals a fold of the raw events';
