-- contextlake engine, part 1: schemas and the catalog.
-- The catalog is what every other part is driven by: the maintenance triggers,
-- the generated read functions, the freshness views, compaction and verify.

-- ===========================================================================
-- Schemas
-- ===========================================================================
CREATE SCHEMA IF NOT EXISTS lake;
COMMENT ON SCHEMA lake IS 'contextlake engine: catalog, definition API, read path, freshness views';
CREATE SCHEMA IF NOT EXISTS lake_gen;
COMMENT ON SCHEMA lake_gen IS 'objects generated from the catalog (state tables, triggers, read functions); never edit by hand';

-- ===========================================================================
-- Settings
-- ===========================================================================
CREATE TABLE lake.settings (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE lake.settings IS 'engine knobs a person may change with UPDATE; read by compaction and the freshness views';

INSERT INTO lake.settings (key, value, description) VALUES
    ('retention_grace', '1 day', 'raw events are kept this long beyond the longest window that needs them (at least 1 hour)'),
    ('min_raw_retention', '0', 'raw events are never compacted before they are this old (e.g. ''180 days'' for training exports)'),
    ('lag_window', '5 minutes', 'how far back lake.ingest_lag looks'),
    ('maintenance_work_mem', '64MB', 'work_mem of the maintenance triggers: a large COPY sorts its events in memory (takes effect when a source is regenerated)');

-- Reads a setting as text; a missing key is a programming error, so it raises.
CREATE FUNCTION lake.setting(p_key text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT value FROM lake.settings WHERE key = p_key
$$;
COMMENT ON FUNCTION lake.setting(text) IS 'value of one engine knob from lake.settings';

-- ===========================================================================
-- Sources: landing tables (events) and batch tables the features read from
-- ===========================================================================
CREATE TABLE lake.sources (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    kind             text NOT NULL CHECK (kind IN ('events', 'batch')),
    entity           text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),
    table_name       regclass NOT NULL UNIQUE,
    entity_column    name NOT NULL,
    time_column      name NOT NULL,
    id_column        name,
    landed_column    name,
    state_aggs       text[] NOT NULL DEFAULT '{}',
    tracked_columns  name[] NOT NULL DEFAULT '{}',
    distinct_columns name[] NOT NULL DEFAULT '{}',
    grains           int[] NOT NULL DEFAULT '{}',
    tile_threshold   int NOT NULL DEFAULT 50 CHECK (tile_threshold > 0),
    compacted_before timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lake.sources IS 'one row per landing table (kind events) or batch feature table (kind batch); which columns and tile grains its state keeps';
COMMENT ON COLUMN lake.sources.state_aggs IS 'what the state keeps per column (column:sum, column:cnt, column:minmax, column:last), derived from the features';
COMMENT ON COLUMN lake.sources.grains IS 'tile sizes in seconds the windows of this source are read from';
COMMENT ON COLUMN lake.sources.tile_threshold IS 'an entity gets time tiles once this many of its events land in one UTC day; until then its windows are read from raw events';
COMMENT ON COLUMN lake.sources.compacted_before IS 'as-of reads before this time are refused: compaction removed the raw events they need';

-- ===========================================================================
-- Features
-- ===========================================================================
CREATE TABLE lake.features (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    kind          text NOT NULL CHECK (kind IN ('lifetime', 'window', 'on_demand', 'batch')),
    entity        text,
    source        text REFERENCES lake.sources (name),
    agg           text CHECK (agg IN ('count', 'sum', 'avg', 'min', 'max', 'last', 'first_seen', 'count_distinct', 'value')),
    column_name   name,
    window_length interval,
    grain         int,
    expression    text,
    value_type    text NOT NULL,
    cold_start    text,
    definition    text NOT NULL,
    version       int NOT NULL DEFAULT 1 CHECK (version > 0),
    description   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'window') = (window_length IS NOT NULL)),
    CHECK (window_length IS NULL OR window_length > interval '0'),
    CHECK ((kind = 'on_demand') = (expression IS NOT NULL))
);
COMMENT ON TABLE lake.features IS 'the feature catalog: every feature a feature set can name, how it is computed, and its version';

-- ===========================================================================
-- Feature sets and rules
-- ===========================================================================
CREATE TABLE lake.feature_sets (
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    version    int NOT NULL CHECK (version > 0),
    features   text[] NOT NULL CHECK (cardinality(features) > 0),
    read_function regprocedure,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE lake.feature_sets IS 'named, ordered, versioned feature lists (what a model consumes) and the generated function that reads one';

CREATE TABLE lake.rules (
    feature_set text NOT NULL,
    version     int NOT NULL,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    ordinal     int NOT NULL,
    predicate   text NOT NULL,
    action      text NOT NULL CHECK (action IN ('review', 'decline')),
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feature_set, version, name),
    FOREIGN KEY (feature_set, version) REFERENCES lake.feature_sets (name, version)
);
COMMENT ON TABLE lake.rules IS 'SQL predicates over a feature set, evaluated in the same read as the features they test';

-- ===========================================================================
-- Composite types: the read contract
-- ===========================================================================
CREATE TYPE lake.vector AS (
    feature_set text,
    version     int,
    entity      text,
    as_of       timestamptz,
    snapshot    text,
    features    jsonb,
    ages        jsonb,
    rules       jsonb
);
COMMENT ON TYPE lake.vector IS 'one-snapshot read result: values, per-feature age in seconds, rule results and the snapshot they came from';
