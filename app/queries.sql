-- Named queries the Python side runs. Each block starts with "-- name: NAME".

-- name: freshness
SELECT feature, kind, source, newest_event_id, newest_event_time, state_committed_at, absorbed,
       round(age_seconds::numeric, 3) AS age_seconds
  FROM lake.feature_freshness
 ORDER BY source, feature;

-- name: ingest_lag
SELECT source, events, round(p50_seconds::numeric, 3) AS p50_seconds, round(p95_seconds::numeric, 3) AS p95_seconds,
       round(p99_seconds::numeric, 3) AS p99_seconds, round(max_seconds::numeric, 3) AS max_seconds
  FROM lake.ingest_lag;

-- name: compact
SELECT source, raw_deleted, tiles_deleted, read_horizon FROM lake.compact();

-- name: verify_state
SELECT source, entity, grain, tile_start::text, problem FROM lake.verify_state() ORDER BY 1, 2, 3, 4;

-- name: read_path_problems
SELECT object, problem FROM lake.read_path_problems();

-- name: read_function
SELECT read_function::oid::regproc::text, features
  FROM lake.feature_sets
 WHERE name = %(feature_set)s AND (%(version)s::int IS NULL OR version = %(version)s::int)
 ORDER BY version DESC
 LIMIT 1;

-- name: read_vector_by_name
SELECT feature_set, version, entity, as_of, snapshot, features, ages, rules
  FROM lake.read_vector(%(feature_set)s, %(entity)s, coalesce(%(as_of)s, now()), coalesce(%(request)s, '{}')::jsonb,
                        %(version)s);

