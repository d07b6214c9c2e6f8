-- Named queries the Python side runs. Each block starts with "-- name: NAME".

-- name: freshness
SELECT feature, kind, source, newest_event_id, newest_event_time, state_committed_at, absorbed,
       round(age_seconds::numeric, 3) AS age_seconds
  FROM api.feature_freshness
 ORDER BY source, feature;

-- name: ingest_lag
SELECT source, events, round(p50_seconds::numeric, 3) AS p50_seconds, round(p95_seconds::numeric, 3) AS p95_seconds,
       round(p99_seconds::numeric, 3) AS p99_seconds, round(max_seconds::numeric, 3) AS max_seconds
  FROM api.ingest_lag;

-- name: compact
SELECT source, raw_deleted, tiles_deleted, read_horizon FROM lake.compact();

-- name: verify_state
SELECT source, entity, grain, tile_start::text, problem FROM lake.verify_state() ORDER BY 1, 2, 3, 4;

-- name: read_path_problems
SELECT object, problem FROM lake.read_path_problems();

-- name: read_vector_by_name
SELECT feature_set, version, entity, as_of, snapshot, features, ages, rules
  FROM api.read_vector(%(feature_set)s, %(entity)s, coalesce(%(as_of)s, now()), coalesce(%(request)s, '{}')::jsonb,
                       %(version)s);

-- name: serving_models
SELECT name, version, onnx, sha256, feature_set, feature_set_version, features, review_at, decline_at, status
  FROM api.models
 WHERE status IN ('active', 'shadow') AND (%(name)s::text IS NULL OR name = %(name)s::text)
 ORDER BY name, status;

-- name: feature_set_meta
SELECT fs.version, fs.read_function, fs.features,
       coalesce((SELECT array_agg(r.name ORDER BY r.ordinal) FROM api.rules r
                  WHERE r.feature_set = fs.name AND r.version = fs.version), '{}') AS rule_names,
       coalesce((SELECT array_agg(r.action ORDER BY r.ordinal) FROM api.rules r
                  WHERE r.feature_set = fs.name AND r.version = fs.version), '{}') AS rule_actions,
       coalesce((SELECT array_agg(r.reason ORDER BY r.ordinal) FROM api.rules r
                  WHERE r.feature_set = fs.name AND r.version = fs.version), '{}') AS rule_reasons,
       (SELECT f.source FROM unnest(fs.features) WITH ORDINALITY AS u(name, i)
          JOIN api.features f ON f.name = u.name
          JOIN api.sources s ON s.name = f.source AND s.kind = 'events'
         ORDER BY u.i LIMIT 1) AS event_source,
       (SELECT s.entity FROM unnest(fs.features) WITH ORDINALITY AS u(name, i)
          JOIN api.features f ON f.name = u.name
          JOIN api.sources s ON s.name = f.source
         ORDER BY u.i LIMIT 1) AS entity
  FROM api.feature_sets fs
 WHERE fs.name = %(feature_set)s AND fs.version = %(version)s;

-- name: api_key
SELECT secret_sha256, scopes, revoked FROM api.api_key(%(key_id)s);

-- name: lock_entity
SELECT api.lock_entity(%(source)s, %(entity)s, %(event)s, %(lock_timeout)s);

-- name: land_event
SELECT api.land_event(%(source)s, %(entity)s, %(event)s);

-- name: log_decisions
SELECT api.log_decisions(%(rows)s);

-- name: register_model
SELECT name, version, sha256, features, status
  FROM lake.register_model(%(name)s, %(version)s, %(onnx)s, %(feature_set)s, %(feature_set_version)s,
                           %(features)s, %(review_at)s, %(decline_at)s, %(status)s);

-- name: next_model_version
SELECT coalesce(max(version), 0) + 1 FROM lake.models WHERE name = %(name)s;

-- name: set_model_status
SELECT name, version, status FROM lake.set_model_status(%(name)s, %(version)s, %(status)s);

-- name: list_models
SELECT name, version, status, feature_set || ' v' || feature_set_version AS feature_set,
       cardinality(features) AS inputs, review_at, decline_at, left(sha256, 12) AS sha256,
       to_char(registered_at, 'YYYY-MM-DD HH24:MI:SS') AS registered_at
  FROM lake.models
 ORDER BY name, version;

-- name: model_inputs
SELECT feature FROM lake.model_inputs(%(feature_set)s, %(version)s) WHERE usable;

-- name: latest_feature_set_version
SELECT max(version) FROM lake.feature_sets WHERE name = %(feature_set)s;

-- name: create_api_key
SELECT key_id, api_key FROM lake.create_api_key(%(name)s, %(scopes)s);

-- name: import_api_key
SELECT lake.import_api_key(%(name)s, %(scopes)s, %(key)s);

-- name: revoke_api_key
SELECT lake.revoke_api_key(%(key_id)s);

-- name: list_api_keys
SELECT key_id, name, array_to_string(scopes, ',') AS scopes, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS created_at,
       to_char(revoked_at, 'YYYY-MM-DD HH24:MI:SS') AS revoked_at
  FROM lake.api_keys
 ORDER BY created_at;

-- name: ingest_lag_metrics
SELECT source, p50_seconds, p95_seconds, p99_seconds, max_seconds FROM api.ingest_lag;

-- name: active_model
SELECT version FROM lake.models WHERE name = %(name)s AND status = 'active';

-- name: decisions_by_outcome
SELECT outcome, count(*) FROM lake.decisions GROUP BY outcome ORDER BY outcome;

-- name: land_events
SELECT idx, event_id, status, reason FROM api.land_events(%(source)s, %(events)s);

-- name: cdc_decode_hints
SELECT upstream_table, decode FROM api.cdc_mappings;

-- name: apply_changes
SELECT idx, status, reason FROM api.apply_changes(%(changes)s);

-- name: land_staged
-- The staged rows of a load (temp table lake_load: line plus text columns), landed as one batch;
-- each row's outcome by its line number. NULL columns are left out, so they take their defaults.
WITH staged AS (
    SELECT row_number() OVER (ORDER BY line) - 1 AS idx, line,
           jsonb_strip_nulls(to_jsonb(l) - 'line') AS event
      FROM lake_load l
), landed AS (
    SELECT * FROM lake.land_events(%(source)s, (SELECT coalesce(jsonb_agg(event ORDER BY idx), '[]') FROM staged))
)
SELECT s.line, l.status, l.reason, s.event::text
  FROM staged s JOIN landed l ON l.idx = s.idx
 ORDER BY s.line;

-- name: training_statement
SELECT lake.training_statement(%(feature_set)s, %(version)s, %(label)s, %(start)s, %(end)s, %(cutoff)s,
                               %(offset)s, %(part)s, %(parts)s);

-- name: training_columns
SELECT feature, type FROM lake.model_inputs(%(feature_set)s, %(version)s);

-- name: label_events
SELECT first_event, last_event, events FROM lake.label_events(%(label)s, %(start)s, %(end)s);

-- name: model_for_replay
SELECT m.name, m.version, m.onnx, m.feature_set, m.feature_set_version, m.features, m.review_at, m.decline_at,
       coalesce((SELECT array_agg(r.action ORDER BY r.ordinal) FROM lake.rules r
                  WHERE r.feature_set = m.feature_set AND r.version = m.feature_set_version), '{}')
  FROM lake.models m
 WHERE m.name = %(name)s
   AND CASE WHEN %(version)s::int IS NULL THEN m.status = 'active' ELSE m.version = %(version)s::int END;

-- ===========================================================================
-- Migrations: bookkeeping of the engine's and a project's migration chains
-- ===========================================================================

-- name: migration_lock
SELECT pg_advisory_lock(727001);

-- name: migration_unlock
SELECT pg_advisory_unlock(727001);

-- name: current_transaction
SELECT pg_current_xact_id()::text;

-- name: create_bookkeeping
CREATE SCHEMA IF NOT EXISTS lake;
CREATE TABLE IF NOT EXISTS lake.applied_migrations (
    chain      text NOT NULL,
    version    int NOT NULL,
    name       text NOT NULL,
    sha256     text NOT NULL,
    adopted    boolean NOT NULL DEFAULT false,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, version)
);
COMMENT ON TABLE lake.applied_migrations IS 'migrations applied to this lake: the engine''s chain, each project''s chain, and the adopted history of release 0.1.0 (chain legacy)';
CREATE TABLE IF NOT EXISTS lake.installed_code (
    part         text PRIMARY KEY,
    sha256       text NOT NULL,
    version      text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lake.installed_code IS 'the engine''s functions, views, triggers and grants as last installed (checksum, release); a change reinstalls them, an older release is refused';
CREATE TABLE IF NOT EXISTS lake.engine_objects (
    kind     text NOT NULL CHECK (kind IN ('function', 'view')),
    identity text NOT NULL,
    PRIMARY KEY (kind, identity)
);
COMMENT ON TABLE lake.engine_objects IS 'functions and views the engine''s code installed last time: what a later release drops when it no longer has them (nothing else in the schemas is touched)';

-- name: has_bookkeeping
SELECT to_regclass('lake.applied_migrations') IS NOT NULL;

-- name: has_legacy_bookkeeping
SELECT to_regclass('lake.alembic_version') IS NOT NULL AND to_regclass('lake.migration_checksums') IS NOT NULL;

-- name: legacy_revision
SELECT version_num FROM lake.alembic_version;

-- name: legacy_checksums
SELECT revision, name, sha256, applied_at FROM lake.migration_checksums ORDER BY revision;

-- name: drop_legacy_bookkeeping
DROP TABLE lake.alembic_version, lake.migration_checksums;

-- name: revoke_legacy_grants
-- Release 0.1.0 let the service and analyst roles read every landing schema and table directly; now
-- they read the contract (schema api) only. Grants on the engine's own schemas are reset by roles.sql.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT c.oid::regclass AS tbl, n.nspname AS schema
               FROM lake.sources s JOIN pg_class c ON c.oid = s.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM contextlake_service, contextlake_analyst', r.tbl);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM contextlake_service, contextlake_analyst', r.schema);
    END LOOP;
END $$;

-- name: applied_migrations
SELECT chain, version, name, sha256, adopted, applied_at FROM lake.applied_migrations ORDER BY chain, version;

-- name: record_migration
INSERT INTO lake.applied_migrations (chain, version, name, sha256, adopted, applied_at)
VALUES (%(chain)s, %(version)s, %(name)s, %(sha256)s, %(adopted)s, coalesce(%(applied_at)s, now()));

-- name: installed_code
SELECT sha256, version FROM lake.installed_code WHERE part = 'engine';

-- name: record_code
INSERT INTO lake.installed_code (part, sha256, version) VALUES ('engine', %(sha256)s, %(version)s)
ON CONFLICT (part) DO UPDATE SET sha256 = excluded.sha256, version = excluded.version, installed_at = now();

-- name: engine_objects_now
-- Functions and views of the engine's schemas this transaction (re)created: what the engine's code is.
-- Generated read functions and members of extensions are not the code's.
SELECT 'function', p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('lake', 'api') AND p.xmin = pg_current_xact_id()::xid
   AND p.oid NOT IN (SELECT read_function FROM lake.feature_sets WHERE read_function IS NOT NULL)
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'view', c.oid::regclass::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_rewrite r ON r.ev_class = c.oid
 WHERE n.nspname IN ('lake', 'api') AND c.relkind = 'v' AND r.xmin = pg_current_xact_id()::xid;

-- name: untouched_objects
-- Functions and views of the engine's schemas this transaction did not (re)create, but for generated
-- read functions and members of extensions: on a lake the runner has no record of (release 0.1.0),
-- they are what the earlier release installed.
SELECT 'function', p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('lake', 'api') AND NOT p.xmin = pg_current_xact_id()::xid
   AND p.oid NOT IN (SELECT read_function FROM lake.feature_sets WHERE read_function IS NOT NULL)
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'view', c.oid::regclass::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_rewrite r ON r.ev_class = c.oid
 WHERE n.nspname IN ('lake', 'api') AND c.relkind = 'v' AND NOT r.xmin = pg_current_xact_id()::xid;

-- name: recorded_engine_objects
SELECT kind, identity FROM lake.engine_objects;

-- name: forget_engine_objects
DELETE FROM lake.engine_objects;

-- name: record_engine_object
INSERT INTO lake.engine_objects (kind, identity) VALUES (%s, %s);

-- name: regenerate
SELECT kind, name FROM lake.regenerate();

-- name: dead_letter_changes
SELECT idx, id FROM api.dead_letter_changes(%(rejects)s);

-- name: open_dead_letters
-- Dead letters still open (or all of them), oldest first; ids = NULL means every one.
SELECT id, first_seen_at, last_seen_at, attempts, upstream_table, lsn, op, reason, resolution, event
  FROM lake.cdc_dead_letters
 WHERE (%(all)s OR resolved_at IS NULL) AND (%(ids)s::bigint[] IS NULL OR id = ANY (%(ids)s::bigint[]))
 ORDER BY id;

-- name: settle_dead_letters
SELECT lake.settle_dead_letters(%(outcomes)s);
