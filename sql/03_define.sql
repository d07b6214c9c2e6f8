-- contextlake engine, part 3: the definition API called by migrations.
-- Every function here validates before it writes, so a bad definition fails
-- its migration with a clear message and the catalog stays as it was.

-- ===========================================================================
-- Sources
-- ===========================================================================

-- Checks that a column exists and is NOT NULL (entity keys and event times must be).
CREATE OR REPLACE FUNCTION lake._require_not_null(p_table regclass, p_column name) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM lake._column_type(p_table, p_column);
    IF NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = p_table AND attname = p_column) THEN
        RAISE EXCEPTION 'column "%" of % must be NOT NULL to serve as a source key or time', p_column, p_table
            USING ERRCODE = 'invalid_table_definition';
    END IF;
END
$$;
COMMENT ON FUNCTION lake._require_not_null(regclass, name) IS 'definition check: keys and times of a source cannot be NULL';

-- Registers a landing table as an event source and generates its state.
CREATE OR REPLACE FUNCTION lake.define_source(
    p_name text, p_table regclass, p_entity text, p_entity_column name, p_time_column name, p_id_column name,
    p_landed_column name DEFAULT 'landed_at'
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM lake.sources WHERE name = p_name) THEN
        RAISE EXCEPTION 'source "%" already exists', p_name USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM lake._require_not_null(p_table, p_entity_column);
    PERFORM lake._require_not_null(p_table, p_time_column);
    PERFORM lake._require_not_null(p_table, p_id_column);
    PERFORM lake._require_not_null(p_table, p_landed_column);
    IF lake._column_type(p_table, p_time_column)::regtype <> 'timestamptz'::regtype
       OR lake._column_type(p_table, p_landed_column)::regtype <> 'timestamptz'::regtype THEN
        RAISE EXCEPTION 'time columns "%" and "%" of % must be timestamptz', p_time_column, p_landed_column, p_table
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = p_table AND i.indisunique AND i.indnkeyatts = 1
                      AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = p_table AND attname = p_id_column)) THEN
        RAISE EXCEPTION 'id column "%" of % must be unique (it makes redelivery idempotent and orders ties)', p_id_column, p_table
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    INSERT INTO lake.sources (name, kind, entity, table_name, entity_column, time_column, id_column, landed_column)
    VALUES (p_name, 'events', p_entity, p_table, p_entity_column, p_time_column, p_id_column, p_landed_column);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (%I, %I)',
                   'lake_' || p_name || '_entity_time', p_table, p_entity_column, p_time_column);
    -- BRIN: landing order follows the clock, and a BRIN index costs next to nothing per insert.
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING brin (%I)',
                   'lake_' || p_name || '_landed', p_table, p_landed_column);
    PERFORM lake._generate_source(p_name);
END
$$;
COMMENT ON FUNCTION lake.define_source(text, regclass, text, name, name, name, name) IS 'declares a landing table as an event source: index on (entity, time), state table, maintenance trigger';

-- Registers a table loaded by an offline job; each row is an entity's values as loaded at loaded_at.
CREATE OR REPLACE FUNCTION lake.define_batch_source(
    p_name text, p_table regclass, p_entity text, p_entity_column name, p_loaded_at_column name
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM lake.sources WHERE name = p_name) THEN
        RAISE EXCEPTION 'source "%" already exists', p_name USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM lake._require_not_null(p_table, p_entity_column);
    PERFORM lake._require_not_null(p_table, p_loaded_at_column);
    IF lake._column_type(p_table, p_loaded_at_column)::regtype <> 'timestamptz'::regtype THEN
        RAISE EXCEPTION 'loaded_at column "%" of % must be timestamptz', p_loaded_at_column, p_table
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    INSERT INTO lake.sources (name, kind, entity, table_name, entity_column, time_column)
    VALUES (p_name, 'batch', p_entity, p_table, p_entity_column, p_loaded_at_column);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (%I, %I)',
                   'lake_' || p_name || '_entity_loaded', p_table, p_entity_column, p_loaded_at_column);
END
$$;
COMMENT ON FUNCTION lake.define_batch_source(text, regclass, text, name, name) IS 'declares a batch feature table; reads take the newest row loaded at or before as_of';

-- Changes when an entity of a source starts getting time tiles; regenerates the trigger.
CREATE OR REPLACE FUNCTION lake.set_tile_threshold(p_source text, p_events_per_day int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lake.sources SET tile_threshold = p_events_per_day WHERE name = p_source AND kind = 'events';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event source "%" is not defined', p_source USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE lake._maintain_function_sql(p_source, false);
END
$$;
COMMENT ON FUNCTION lake.set_tile_threshold(text, int) IS 'knob: events per entity per day after which its windows are kept in tiles (fewer means more tiles, faster reads of busy entities)';

-- Makes the state of a source keep exactly what its features need; regenerates it when that changed.
CREATE OR REPLACE FUNCTION lake._ensure_state(p_source text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    v_aggs text[];
    v_cols name[];
    v_dcols name[];
    v_grains int[];
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source FOR UPDATE;
    -- What each aggregate needs kept per column: sum (sum, avg), cnt (avg), minmax (min, max), last (last).
    SELECT coalesce(array_agg(DISTINCT a ORDER BY a), '{}') INTO v_aggs
      FROM lake.features f
     CROSS JOIN LATERAL unnest(CASE f.agg WHEN 'sum' THEN '{sum}'::text[] WHEN 'avg' THEN '{sum,cnt}'
                                          WHEN 'min' THEN '{minmax}' WHEN 'max' THEN '{minmax}'
                                          WHEN 'last' THEN '{last}' ELSE '{}' END) AS k
     CROSS JOIN LATERAL (SELECT f.column_name || ':' || k) AS x(a)
     WHERE f.source = p_source;
    SELECT coalesce(array_agg(DISTINCT split_part(a, ':', 1)::name ORDER BY split_part(a, ':', 1)::name), '{}') INTO v_cols
      FROM unnest(v_aggs) a;
    SELECT coalesce(array_agg(DISTINCT column_name ORDER BY column_name), '{}') INTO v_dcols
      FROM lake.features WHERE source = p_source AND agg = 'count_distinct';
    SELECT coalesce(array_agg(DISTINCT grain ORDER BY grain), '{}') INTO v_grains
      FROM lake.features WHERE source = p_source AND kind = 'window';
    IF (v_aggs, v_cols, v_dcols, v_grains) = (s.state_aggs, s.tracked_columns, s.distinct_columns, s.grains) THEN
        RETURN;
    END IF;
    IF s.compacted_before IS NOT NULL THEN
        RAISE EXCEPTION 'source "%" was compacted before %; new state for it cannot be rebuilt from the raw events', p_source, s.compacted_before
            USING HINT = 'define the feature over aggregates and windows the source already keeps, or reload the source';
    END IF;
    UPDATE lake.sources SET state_aggs = v_aggs, tracked_columns = v_cols, distinct_columns = v_dcols, grains = v_grains
     WHERE name = p_source;
    PERFORM lake._generate_source(p_source);
    PERFORM lake._generate_feature_set(fs.name, fs.version)
       FROM lake.feature_sets fs
      WHERE EXISTS (SELECT 1 FROM lake.features f WHERE f.name = ANY (fs.features) AND f.source = p_source);
END
$$;
COMMENT ON FUNCTION lake._ensure_state(text) IS 'keeps a source''s state to what its features need (columns, aggregates, tile grains), rebuilding it from raw events on a change';

-- ===========================================================================
-- Features
-- ===========================================================================

-- Refuses a cold-start value that is not a value of the feature's type.
CREATE OR REPLACE FUNCTION lake._check_cold_start(p_name text, p_cold_start text, p_type text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_cold_start IS NOT NULL THEN
        EXECUTE format('SELECT %L::%s', p_cold_start, p_type);
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'feature "%": cold-start value % is not a % (%)', p_name, quote_literal(p_cold_start), p_type, SQLERRM
        USING ERRCODE = 'invalid_parameter_value';
END
$$;
COMMENT ON FUNCTION lake._check_cold_start(text, text, text) IS 'definition check: a bad cold-start value fails the definition, not every later read';

-- Refuses a second feature of the same name: features are immutable, a change is a new name (_v2).
CREATE OR REPLACE FUNCTION lake._require_new_feature(p_name text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v int;
BEGIN
    SELECT version INTO v FROM lake.features WHERE name = p_name;
    IF FOUND THEN
        RAISE EXCEPTION 'feature "%" already exists (version %)', p_name, v
            USING HINT = 'features are immutable: define the changed feature under a new name such as ' || p_name || '_v' || (v + 1),
                  ERRCODE = 'duplicate_object';
    END IF;
    IF p_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'feature name "%" is not a lower-case identifier of at most 48 characters', p_name
            USING ERRCODE = 'invalid_name';
    END IF;
END
$$;
COMMENT ON FUNCTION lake._require_new_feature(text) IS 'definition check shared by every define_* of a feature';

-- Declares a feature aggregated from an event source: lifetime when p_window is NULL, else a sliding window.
CREATE OR REPLACE FUNCTION lake.define_feature(
    p_name text, p_source text, p_agg text, p_column name DEFAULT NULL, p_window interval DEFAULT NULL,
    p_cold_start text DEFAULT NULL, p_description text DEFAULT NULL, p_version int DEFAULT 1
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    ct text;
    vt text;
    grain int;
    kind text := CASE WHEN p_window IS NULL THEN 'lifetime' ELSE 'window' END;
    allowed text[] := CASE WHEN p_window IS NULL
                           THEN '{count,sum,avg,min,max,last,first_seen}'
                           ELSE '{count,sum,avg,min,max,count_distinct}' END;
BEGIN
    PERFORM lake._require_new_feature(p_name);
    SELECT * INTO s FROM lake.sources WHERE name = p_source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'feature "%": source "%" is not defined', p_name, p_source USING ERRCODE = 'undefined_object';
    END IF;
    IF s.kind = 'batch' THEN
        RAISE EXCEPTION 'feature "%": source "%" is a batch source; use lake.define_batch_feature', p_name, p_source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT p_agg = ANY (allowed) THEN
        RAISE EXCEPTION 'feature "%": aggregate "%" is not available for a % feature (choose one of %)', p_name, p_agg, kind, allowed
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_window IS NOT NULL AND p_window <= interval '0' THEN
        RAISE EXCEPTION 'feature "%": window must be positive, got %', p_name, p_window USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_window IS NOT NULL AND (extract(month FROM p_window) <> 0 OR extract(year FROM p_window) <> 0) THEN
        RAISE EXCEPTION 'feature "%": window % has months or years, whose length varies; give it in days', p_name, p_window
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_agg IN ('count', 'first_seen') THEN
        IF p_column IS NOT NULL THEN
            RAISE EXCEPTION 'feature "%": % takes no column', p_name, p_agg USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSE
        IF p_column IS NULL THEN
            RAISE EXCEPTION 'feature "%": % needs a column', p_name, p_agg USING ERRCODE = 'invalid_parameter_value';
        END IF;
        ct := lake._column_type(s.table_name, p_column);
    END IF;
    IF p_agg IN ('sum', 'avg') AND lake._sum_type(ct::regtype) IS NULL THEN
        RAISE EXCEPTION 'feature "%": % needs a numeric column, "%" is %', p_name, p_agg, p_column, ct USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF p_agg IN ('min', 'max') AND NOT lake._has_minmax(ct::regtype) THEN
        RAISE EXCEPTION 'feature "%": % is not defined for column "%" of type %', p_name, p_agg, p_column, ct USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF p_agg = 'last' AND (SELECT typcategory = 'A' FROM pg_type WHERE oid = ct::regtype) THEN
        RAISE EXCEPTION 'feature "%": last of an array column ("%" is %) is not supported', p_name, p_column, ct
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF length(p_column) > 55 THEN
        RAISE EXCEPTION 'feature "%": column name "%" is longer than 55 characters', p_name, p_column
            USING HINT = 'the state keeps columns named <aggregate>__<column> within the 63-character limit',
                  ERRCODE = 'name_too_long';
    END IF;
    -- A compacted source keeps raw events for its longest window only: a longer one would read too few.
    IF s.compacted_before IS NOT NULL AND p_window IS NOT NULL
       AND p_window > (SELECT coalesce(max(window_length), interval '0') FROM lake.features WHERE source = p_source) THEN
        RAISE EXCEPTION 'feature "%": source "%" was compacted for windows up to %; a % window needs raw events it no longer has',
                        p_name, p_source, (SELECT max(window_length) FROM lake.features WHERE source = p_source), p_window
            USING HINT = 'raise lake.settings min_raw_retention before compacting, or reload the source',
                  ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    vt := CASE p_agg WHEN 'count' THEN 'bigint' WHEN 'count_distinct' THEN 'bigint'
                     WHEN 'first_seen' THEN 'timestamp with time zone'
                     WHEN 'sum' THEN lake._sum_type(ct::regtype)::text WHEN 'avg' THEN lake._sum_type(ct::regtype)::text
                     ELSE ct END;
    grain := CASE WHEN p_window IS NULL THEN NULL ELSE lake.grain_for(p_window) END;
    PERFORM lake._check_cold_start(p_name, p_cold_start, vt);

    INSERT INTO lake.features (name, kind, entity, source, agg, column_name, window_length, grain, value_type,
                               cold_start, definition, version, description)
    VALUES (p_name, kind, s.entity, p_source, p_agg, p_column, p_window, grain, vt,
            coalesce(p_cold_start, CASE WHEN p_agg IN ('count', 'count_distinct', 'sum') THEN '0' END),
            CASE p_agg WHEN 'count' THEN 'count(*)' WHEN 'first_seen' THEN format('min(%I)', s.time_column)
                       WHEN 'count_distinct' THEN format('count(DISTINCT %I)', p_column)
                       ELSE format('%s(%I)', p_agg, p_column) END
            || ' of ' || p_source || ' per ' || s.entity
            || CASE WHEN p_window IS NULL THEN ' over its lifetime' ELSE ' over the last ' || p_window::text END,
            p_version, p_description);
    PERFORM lake._ensure_state(p_source);
END
$$;
COMMENT ON FUNCTION lake.define_feature(text, text, text, name, interval, text, text, int) IS 'declares a lifetime or sliding-window aggregate of an event source';

-- Declares a feature read from a batch source column, as loaded at or before as_of.
CREATE OR REPLACE FUNCTION lake.define_batch_feature(
    p_name text, p_source text, p_column name, p_cold_start text DEFAULT NULL,
    p_description text DEFAULT NULL, p_version int DEFAULT 1
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
BEGIN
    PERFORM lake._require_new_feature(p_name);
    SELECT * INTO s FROM lake.sources WHERE name = p_source AND kind = 'batch';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'feature "%": batch source "%" is not defined', p_name, p_source USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM lake._check_cold_start(p_name, p_cold_start, lake._column_type(s.table_name, p_column));
    INSERT INTO lake.features (name, kind, entity, source, agg, column_name, value_type, cold_start, definition, version, description)
    VALUES (p_name, 'batch', s.entity, p_source, 'value', p_column, lake._column_type(s.table_name, p_column), p_cold_start,
            format('%I of %s per %s as last loaded', p_column, p_source, s.entity), p_version, p_description);
END
$$;
COMMENT ON FUNCTION lake.define_batch_feature(text, text, name, text, text, int) IS 'declares a feature that an offline job loads into a batch source';

-- Declares a feature computed at read time from the request payload (request), as_of and the set's other features (f.name).
CREATE OR REPLACE FUNCTION lake.define_on_demand(
    p_name text, p_expression text, p_value_type text DEFAULT 'double precision',
    p_description text DEFAULT NULL, p_version int DEFAULT 1
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lake._require_new_feature(p_name);
    IF p_expression ~ ';' THEN
        RAISE EXCEPTION 'feature "%": an expression cannot contain ";"', p_name USING ERRCODE = 'syntax_error';
    END IF;
    INSERT INTO lake.features (name, kind, expression, value_type, definition, version, description)
    VALUES (p_name, 'on_demand', p_expression, format_type(p_value_type::regtype, NULL), p_expression, p_version, p_description);
END
$$;
COMMENT ON FUNCTION lake.define_on_demand(text, text, text, text, int) IS 'declares a request-time feature; it is checked (columns, volatility) when a feature set uses it';

-- ===========================================================================
-- Feature sets and rules
-- ===========================================================================

-- Declares a named, ordered, versioned feature list and generates its one-snapshot read function.
CREATE OR REPLACE FUNCTION lake.define_feature_set(p_name text, p_version int, p_features text[]) RETURNS regprocedure
LANGUAGE plpgsql AS $$
DECLARE
    missing text[];
    entities text[];
BEGIN
    IF EXISTS (SELECT 1 FROM lake.feature_sets WHERE name = p_name AND version = p_version) THEN
        RAISE EXCEPTION 'feature set "%" version % already exists', p_name, p_version
            USING HINT = 'feature sets are immutable: define version ' || (SELECT max(version) + 1 FROM lake.feature_sets WHERE name = p_name),
                  ERRCODE = 'duplicate_object';
    END IF;
    IF (SELECT count(DISTINCT x) FROM unnest(p_features) x) <> cardinality(p_features) THEN
        RAISE EXCEPTION 'feature set "%": a feature is listed twice', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(x) INTO missing FROM unnest(p_features) x WHERE NOT EXISTS (SELECT 1 FROM lake.features WHERE name = x);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'feature set "%": unknown features %', p_name, missing USING ERRCODE = 'undefined_object';
    END IF;
    SELECT array_agg(DISTINCT entity) INTO entities FROM lake.features WHERE name = ANY (p_features) AND entity IS NOT NULL;
    IF cardinality(entities) > 1 THEN
        RAISE EXCEPTION 'feature set "%": features of several entities % (a set is read for one entity key)', p_name, entities
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO lake.feature_sets (name, version, features) VALUES (p_name, p_version, p_features);
    RETURN lake._generate_feature_set(p_name, p_version);
END
$$;
COMMENT ON FUNCTION lake.define_feature_set(text, int, text[]) IS 'declares what a model consumes and generates the STABLE function that reads it in one snapshot';

-- Declares a rule of a feature set: a boolean SQL expression over f.<feature>, request and as_of. Only
-- in the transaction that defined the version: a committed version is sealed, services cache its shape.
CREATE OR REPLACE FUNCTION lake.define_rule(
    p_feature_set text, p_version int, p_name text, p_predicate text, p_action text, p_reason text
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_set lake.feature_sets;
BEGIN
    SELECT * INTO v_set FROM lake.feature_sets WHERE name = p_feature_set AND version = p_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rule "%": feature set "%" version % is not defined', p_name, p_feature_set, p_version
            USING ERRCODE = 'undefined_object';
    END IF;
    IF v_set.defined_in <> pg_current_xact_id() THEN
        RAISE EXCEPTION 'rule "%": feature set "%" version % is sealed (defined by an earlier transaction, and read by services as it is)',
                        p_name, p_feature_set, p_version
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('define version %s with lake.define_feature_set(%L, %s, ...) and give it its rules in the same migration',
                                (SELECT max(version) + 1 FROM lake.feature_sets WHERE name = p_feature_set), p_feature_set,
                                (SELECT max(version) + 1 FROM lake.feature_sets WHERE name = p_feature_set));
    END IF;
    IF EXISTS (SELECT 1 FROM lake.rules WHERE feature_set = p_feature_set AND version = p_version AND name = p_name) THEN
        RAISE EXCEPTION 'rule "%" already exists in feature set "%" version %', p_name, p_feature_set, p_version
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF p_action NOT IN ('review', 'decline') THEN
        RAISE EXCEPTION 'rule "%": action must be review or decline, got "%"', p_name, p_action USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_predicate ~ ';' THEN
        RAISE EXCEPTION 'rule "%": a predicate cannot contain ";"', p_name USING ERRCODE = 'syntax_error';
    END IF;
    INSERT INTO lake.rules (feature_set, version, name, ordinal, predicate, action, reason)
    VALUES (p_feature_set, p_version, p_name,
            (SELECT count(*) FROM lake.rules WHERE feature_set = p_feature_set AND version = p_version),
            p_predicate, p_action, p_reason);
    PERFORM lake._generate_feature_set(p_feature_set, p_version);
END
$$;
COMMENT ON FUNCTION lake.define_rule(text, int, text, text, text, text) IS 'adds a rule to a feature set and regenerates its read so the rule is evaluated in the same snapshot';
