-- contextlake engine, part 14: the contract (schema api).
-- Everything the service and analysts call or read, and nothing else: views over the catalog, the
-- registry and the decision log; freshness and lag; the read functions; landing, locking and logging
-- for the service. The tables stay in the private schemas lake and lake_gen. The functions here run as
-- the lake's owner (SECURITY DEFINER, with search_path pinned to pg_catalog so a caller's search_path
-- cannot substitute a function or operator) and call schema-qualified engine functions only; who may call
-- which is in roles.sql. Generated read functions (api.read_<set>_v<n>) join them from the catalog.

-- ===========================================================================
-- The catalog, the registry, the decision log (views)
-- ===========================================================================
CREATE OR REPLACE VIEW api.sources AS
SELECT name, kind, entity, table_name::text AS table_name, entity_column, time_column, id_column, landed_column,
       tile_threshold, compacted_before, created_at
  FROM lake.sources;
COMMENT ON VIEW api.sources IS 'the sources features read from: landing tables (events) and batch tables';

CREATE OR REPLACE VIEW api.features AS
SELECT name, kind, entity, source, agg, column_name, window_length, expression, value_type, cold_start,
       definition, version, description, created_at
  FROM lake.features;
COMMENT ON VIEW api.features IS 'the feature catalog: how each feature is computed';

CREATE OR REPLACE VIEW api.feature_sets AS
SELECT fs.name, fs.version, fs.features, format('%I.%I', n.nspname, p.proname) AS read_function, fs.created_at
  FROM lake.feature_sets fs
  LEFT JOIN pg_proc p ON p.oid = fs.read_function
  LEFT JOIN pg_namespace n ON n.oid = p.pronamespace;
COMMENT ON VIEW api.feature_sets IS 'feature set versions (sealed once defined) and the function that reads each in one snapshot (schema-qualified name)';

CREATE OR REPLACE VIEW api.rules AS
SELECT feature_set, version, name, ordinal, predicate, action, reason, created_at
  FROM lake.rules;
COMMENT ON VIEW api.rules IS 'the rules of each feature set version, evaluated in the same read as its features';

CREATE OR REPLACE VIEW api.labels AS
SELECT name, events_source, label_source, event_column, created_at FROM lake.labels;
COMMENT ON VIEW api.labels IS 'training labels: which source''s rows mark which events';

CREATE OR REPLACE VIEW api.models AS
SELECT name, version, onnx, sha256, feature_set, feature_set_version, features, review_at, decline_at, status,
       registered_at, status_changed_at
  FROM lake.models;
COMMENT ON VIEW api.models IS 'the model registry: ONNX models, the feature set version each consumes, thresholds, status';

CREATE OR REPLACE VIEW api.decisions AS SELECT * FROM lake.decisions;
COMMENT ON VIEW api.decisions IS 'the decision log: every decision with its vector, ages, snapshot, score and rule hits';

CREATE OR REPLACE VIEW api.cdc_mappings AS
SELECT upstream_table, source, columns, decode, on_update, created_at FROM lake.cdc_mappings;
COMMENT ON VIEW api.cdc_mappings IS 'upstream tables change data capture lands, and how their columns map to a source';

CREATE OR REPLACE VIEW api.settings AS SELECT key, value, description FROM lake.settings;
COMMENT ON VIEW api.settings IS 'the engine''s knobs (the owner changes them in lake.settings)';

-- ===========================================================================
-- Freshness and lag (functions running as the owner, and views over them)
-- ===========================================================================

-- Per stored feature: newest event absorbed, its time, the state's commit time, age now.
CREATE OR REPLACE FUNCTION api.feature_freshness_now() RETURNS SETOF lake.feature_freshness
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.feature_freshness $$;
COMMENT ON FUNCTION api.feature_freshness_now() IS 'lake.feature_freshness for callers without access to the lake''s tables';
CREATE OR REPLACE VIEW api.feature_freshness AS SELECT * FROM api.feature_freshness_now();
COMMENT ON VIEW api.feature_freshness IS 'per feature: newest event absorbed, its event time, commit time of the state, age now';

-- Per landing table: landed minus event time over any window.
CREATE OR REPLACE FUNCTION api.ingest_lag_over(p_window interval) RETURNS SETOF lake.ingest_lag
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.ingest_lag_over(p_window) $$;
COMMENT ON FUNCTION api.ingest_lag_over(interval) IS 'ingest lag percentiles per landing table over any window';

-- Per landing table: landed minus event time over lake.settings lag_window.
CREATE OR REPLACE FUNCTION api.ingest_lag_now() RETURNS SETOF lake.ingest_lag
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.ingest_lag $$;
COMMENT ON FUNCTION api.ingest_lag_now() IS 'lake.ingest_lag for callers without access to the lake''s tables';
CREATE OR REPLACE VIEW api.ingest_lag AS SELECT * FROM api.ingest_lag_now();
COMMENT ON VIEW api.ingest_lag IS 'per landing table: p50/p95/p99/max of landed minus event time over lake.settings lag_window';

-- Per upstream table: applied minus source commit time of change data capture.
CREATE OR REPLACE FUNCTION api.cdc_dead_letters_open_now() RETURNS SETOF lake.cdc_dead_letters_open
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.cdc_dead_letters_open $$;
COMMENT ON FUNCTION api.cdc_dead_letters_open_now() IS 'lake.cdc_dead_letters_open for callers without access to the lake''s tables';
CREATE OR REPLACE VIEW api.cdc_dead_letters_open AS SELECT * FROM api.cdc_dead_letters_open_now();
COMMENT ON VIEW api.cdc_dead_letters_open IS 'per upstream table: change events refused and kept, not yet replayed or discarded';

CREATE OR REPLACE FUNCTION api.cdc_lag_now() RETURNS SETOF lake.cdc_lag
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.cdc_lag $$;
COMMENT ON FUNCTION api.cdc_lag_now() IS 'lake.cdc_lag for callers without access to the lake''s tables';
CREATE OR REPLACE VIEW api.cdc_lag AS SELECT * FROM api.cdc_lag_now();
COMMENT ON VIEW api.cdc_lag IS 'per upstream table: p50/p99/max of applied minus source commit time (source.ts_ms)';

-- Per subscription into the lake: how far behind its publisher.
CREATE OR REPLACE FUNCTION api.subscription_lag_now() RETURNS SETOF lake.subscription_lag
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.subscription_lag $$;
COMMENT ON FUNCTION api.subscription_lag_now() IS 'lake.subscription_lag for callers without access to the statistics';
CREATE OR REPLACE VIEW api.subscription_lag AS SELECT * FROM api.subscription_lag_now();
COMMENT ON VIEW api.subscription_lag IS 'per subscription: message transport time and time since the publisher last confirmed a position';

-- ===========================================================================
-- Reading vectors
-- ===========================================================================

-- A feature set's vector by name, as jsonb (for psql and GET /v1/features); the service's scoring
-- reads the typed api.read_<set>_v<n> functions instead.
CREATE OR REPLACE FUNCTION api.read_vector(
    p_feature_set text, p_entity text, p_as_of timestamptz DEFAULT now(), p_request jsonb DEFAULT '{}', p_version int DEFAULT NULL
) RETURNS lake.vector
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM lake.read_vector(p_feature_set, p_entity, p_as_of, p_request, p_version)
$$;
COMMENT ON FUNCTION api.read_vector(text, text, timestamptz, jsonb, int) IS 'one-snapshot vector of a feature set (latest version unless given) as jsonb values, ages and rule flags';

-- ===========================================================================
-- The service: keys, landing, decide-and-commit, the decision log
-- ===========================================================================

-- The hash and scopes of one API key (never the secret): the service checks a presented key with it.
CREATE OR REPLACE FUNCTION api.api_key(p_key_id text)
RETURNS TABLE (secret_sha256 text, scopes text[], revoked boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.secret_sha256, k.scopes, k.revoked_at IS NOT NULL FROM lake.api_keys k WHERE k.key_id = p_key_id
$$;
COMMENT ON FUNCTION api.api_key(text) IS 'hash, scopes and revocation of one API key, for the service''s key check';

-- Lands a batch of events in a source (each bad event named, the good ones landed, none twice).
CREATE OR REPLACE FUNCTION api.land_events(p_source text, p_events jsonb)
RETURNS TABLE (idx int, event_id text, status text, reason text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.land_events(p_source, p_events) $$;
COMMENT ON FUNCTION api.land_events(text, jsonb) IS 'lands a batch of events through lake.land_events (POST /v1/events, bulk loads)';

-- Applies a batch of change events from Debezium through the upstream table mappings.
CREATE OR REPLACE FUNCTION api.apply_changes(p_changes jsonb)
RETURNS TABLE (idx int, status text, reason text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.apply_changes(p_changes) $$;
COMMENT ON FUNCTION api.apply_changes(jsonb) IS 'applies Debezium change events once each by source position (POST /v1/cdc/debezium)';

-- Keeps change events the lake refused (the Debezium endpoint in its dead-letter mode).
CREATE OR REPLACE FUNCTION api.dead_letter_changes(p_rejects jsonb)
RETURNS TABLE (idx int, id bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM lake.dead_letter_changes(p_rejects) $$;
COMMENT ON FUNCTION api.dead_letter_changes(jsonb) IS 'keeps refused Debezium change events in the dead-letter table (POST /v1/cdc/debezium)';

-- Decide-and-commit: the entity's transaction-level lock, and what was already decided for the event.
CREATE OR REPLACE FUNCTION api.lock_entity(p_source text, p_entity text, p_event jsonb, p_lock_timeout text DEFAULT '1s')
RETURNS jsonb
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT lake.lock_entity(p_source, p_entity, p_event, p_lock_timeout) $$;
COMMENT ON FUNCTION api.lock_entity(text, text, jsonb, text) IS 'serializes decide-and-commit per entity (advisory transaction lock) and finds an earlier decision of the event';

-- Decide-and-commit: lands the decided event in the same transaction.
CREATE OR REPLACE FUNCTION api.land_event(p_source text, p_entity text, p_event jsonb)
RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT lake.land_event(p_source, p_entity, p_event) $$;
COMMENT ON FUNCTION api.land_event(text, text, jsonb) IS 'lands one decided event; NULL when it had landed already';

-- Writes a batch of decisions to the log, once each.
CREATE OR REPLACE FUNCTION api.log_decisions(p_rows jsonb) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT lake.log_decisions(p_rows) $$;
COMMENT ON FUNCTION api.log_decisions(jsonb) IS 'writes logged decisions; a decision already logged is skipped';
