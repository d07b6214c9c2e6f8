-- contextlake engine: the current schema (schemas, tables, types, indexes, seed settings).
-- This file is the readable state of the engine's tables; the append-only migrations in
-- migrations/ build exactly this (a test compares the two). Functions, views, triggers and
-- grants live in the other files of sql/ and are reinstalled whenever their text changes.

-- ===========================================================================
-- Catalog: settings, sources, features, feature sets, rules, the read type
-- ===========================================================================

CREATE SCHEMA IF NOT EXISTS lake;
COMMENT ON SCHEMA lake IS 'contextlake engine: catalog, definition API, read path, freshness views';

CREATE SCHEMA IF NOT EXISTS lake_gen;
COMMENT ON SCHEMA lake_gen IS 'objects generated from the catalog (state tables, triggers, read functions); never edit by hand';

CREATE SCHEMA IF NOT EXISTS api;
COMMENT ON SCHEMA api IS 'the contract of the lake: views and functions the service and analysts call or read; the tables stay private';

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

CREATE TABLE lake.feature_sets (
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    version    int NOT NULL CHECK (version > 0),
    features   text[] NOT NULL CHECK (cardinality(features) > 0),
    read_function regprocedure,
    created_at timestamptz NOT NULL DEFAULT now(),
    defined_in xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE lake.feature_sets IS 'named, ordered, versioned feature lists (what a model consumes) and the generated function that reads one';
COMMENT ON COLUMN lake.feature_sets.defined_in IS 'transaction that defined the version; rules can be added only inside it, the version is immutable after it commits';

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

-- ===========================================================================
-- Serving: model registry, decision log, API keys
-- ===========================================================================

CREATE TABLE lake.models (
    name                text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    version             int NOT NULL CHECK (version > 0),
    onnx                bytea NOT NULL,
    sha256              text NOT NULL,
    feature_set         text NOT NULL,
    feature_set_version int NOT NULL,
    features            text[] NOT NULL CHECK (cardinality(features) > 0),
    review_at           double precision CHECK (review_at BETWEEN 0 AND 1),
    decline_at          double precision CHECK (decline_at BETWEEN 0 AND 1),
    status              text NOT NULL CHECK (status IN ('active', 'shadow', 'retired')),
    registered_at       timestamptz NOT NULL DEFAULT now(),
    status_changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version),
    FOREIGN KEY (feature_set, feature_set_version) REFERENCES lake.feature_sets (name, version),
    CHECK (review_at IS NULL OR decline_at IS NULL OR review_at <= decline_at)
);
CREATE UNIQUE INDEX models_one_active ON lake.models (name) WHERE status = 'active';
CREATE UNIQUE INDEX models_one_shadow ON lake.models (name) WHERE status = 'shadow';
COMMENT ON TABLE lake.models IS
    'ONNX models by name and version: the feature set (and the features of it, in input order) each consumes, '
    'its thresholds, and whether it decides (active), is scored beside the active one (shadow) or neither (retired)';

CREATE TABLE lake.decisions (
    decision_id         uuid PRIMARY KEY,
    decided_at          timestamptz NOT NULL,
    route               text NOT NULL CHECK (route IN ('score', 'decide')),
    feature_set         text NOT NULL,
    feature_set_version int NOT NULL,
    entity              text NOT NULL,
    source              text,
    event_id            text,
    request             jsonb NOT NULL,
    as_of               timestamptz NOT NULL,
    snapshot            text NOT NULL,
    features            jsonb NOT NULL,
    ages                jsonb NOT NULL,
    model               text NOT NULL,
    model_version       int NOT NULL,
    score               double precision NOT NULL,
    shadow_model        text,
    shadow_version      int,
    shadow_score        double precision,
    rule_hits           jsonb NOT NULL,
    reasons             jsonb NOT NULL DEFAULT '[]',
    outcome             text NOT NULL CHECK (outcome IN ('approve', 'review', 'decline')),
    latency_ms          jsonb NOT NULL
);
CREATE UNIQUE INDEX decisions_event ON lake.decisions (source, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX decisions_entity ON lake.decisions (entity, decided_at);
CREATE INDEX decisions_decided_at ON lake.decisions USING brin (decided_at);
COMMENT ON TABLE lake.decisions IS
    'every decision: request, vector, ages, snapshot, model and shadow scores, rule hits, outcome, latency '
    '(decide: written in the transaction that landed the event; score: by the service''s batched writer)';

CREATE TABLE lake.api_keys (
    key_id        text PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    secret_sha256 text NOT NULL,
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['score', 'ingest', 'admin']),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
COMMENT ON TABLE lake.api_keys IS 'API keys of the service: only the sha256 of each secret is kept; scopes score, ingest, admin';

-- ===========================================================================
-- Ingest settings
-- ===========================================================================

INSERT INTO lake.settings (key, value, description) VALUES
    ('max_event_future', '5 minutes',
     'an event whose time is further ahead of the lake''s clock than this is rejected (clock skew allowance)');

-- ===========================================================================
-- Change data capture: upstream mappings, applied changes
-- ===========================================================================

CREATE TABLE lake.cdc_mappings (
    upstream_table text PRIMARY KEY CHECK (upstream_table ~ '^[^.]+\.[^.]+$'),
    source         text NOT NULL REFERENCES lake.sources (name),
    columns        jsonb NOT NULL CHECK (jsonb_typeof(columns) = 'object'),
    decode         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(decode) = 'object'),
    on_update      text NOT NULL DEFAULT 'ignore' CHECK (on_update IN ('land', 'ignore')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lake.cdc_mappings IS
    'upstream schema.table -> lake source: columns maps upstream column -> landing column; decode gives the '
    'encoding of upstream columns when events come without their schema (decimal:<scale>, micro_timestamp, '
    'timestamp, date); on_update: an update is ignored (default), or lands its new row image as a new event '
    '(for upstream tables whose updates are events themselves)';

CREATE TABLE lake.cdc_applied (
    upstream_table text NOT NULL,
    lsn            bigint NOT NULL,
    op             text NOT NULL CHECK (op IN ('c', 'r', 'u', 'd', 't')),
    row_key        text NOT NULL,
    source_ts      timestamptz,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    outcome        text NOT NULL,
    PRIMARY KEY (upstream_table, lsn, row_key, op)
);
CREATE INDEX cdc_applied_at ON lake.cdc_applied USING brin (applied_at);
CREATE INDEX cdc_applied_key ON lake.cdc_applied (upstream_table, row_key);
COMMENT ON TABLE lake.cdc_applied IS
    'every applied change by source position (table, LSN, row key, op: several changes can share an LSN), '
    'with the source commit time; a redelivered change finds its row here and applies nothing';

CREATE TABLE lake.cdc_dead_letters (
    id             bigserial PRIMARY KEY,
    event          text NOT NULL,
    event_sha256   bytea NOT NULL UNIQUE,
    upstream_table text,
    lsn            bigint,
    op             text,
    reason         text NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    attempts       int NOT NULL DEFAULT 1,
    resolved_at    timestamptz,
    resolution     text CHECK (resolution IN ('landed', 'duplicate', 'ignored', 'discarded')),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
CREATE INDEX cdc_dead_letters_unresolved ON lake.cdc_dead_letters (id) WHERE resolved_at IS NULL;
COMMENT ON TABLE lake.cdc_dead_letters IS
    'change events the lake refused: the event as posted (JSON text, non-ASCII escaped, so a NUL survives), '
    'why, its source position where readable; seen again it counts an attempt; resolved by a replay that '
    'applies it (contextlake cdc replay) or by a discard';

-- ===========================================================================
-- Native logical replication
-- ===========================================================================

CREATE TABLE lake.replica_sources (
    source     text PRIMARY KEY REFERENCES lake.sources (name),
    enabled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lake.replica_sources IS 'events sources whose landing table a subscription feeds (row-level replica maintenance)';

-- ===========================================================================
-- Training labels
-- ===========================================================================

CREATE TABLE lake.labels (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    events_source text NOT NULL REFERENCES lake.sources (name),
    label_source  text NOT NULL REFERENCES lake.sources (name),
    event_column  name NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lake.labels IS 'training labels: a label source whose rows name events of an events source (event_column holds the event id); a row reported at or before the cutoff marks its event';
