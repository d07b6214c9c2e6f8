-- contextlake engine, part 10: change data capture from an upstream database (Debezium over HTTP).
-- A mapping says which lake source an upstream table's rows land in and how its columns map; every
-- applied change is recorded by its source position, so a redelivered change applies nothing twice.

-- Declares how an upstream table's changes land (run in a migration; a new mapping replaces the old one).
CREATE OR REPLACE FUNCTION lake.define_cdc_mapping(p_upstream_table text, p_source text, p_columns jsonb,
                                        p_decode jsonb DEFAULT '{}', p_on_update text DEFAULT 'ignore')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    v_bad text;
BEGIN
    s := lake._events_source(p_source);
    SELECT string_agg(v, ', ') INTO v_bad FROM jsonb_each_text(p_columns) AS c(k, v)
     WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = s.table_name AND a.attname::text = v
                          AND a.attnum > 0 AND NOT a.attisdropped);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'mapping of %: landing column(s) % not in %', p_upstream_table, v_bad, s.table_name
            USING ERRCODE = 'undefined_column';
    END IF;
    IF s.id_column IS NULL OR NOT EXISTS (SELECT FROM jsonb_each_text(p_columns) c WHERE c.value = s.id_column::text) THEN
        RAISE EXCEPTION 'mapping of %: an upstream column must map to the event id column %', p_upstream_table, s.id_column
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM jsonb_each_text(p_columns) c WHERE c.value = s.entity_column::text) THEN
        RAISE EXCEPTION 'mapping of %: an upstream column must map to the entity column %', p_upstream_table,
            s.entity_column USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Event ids must not collide: one upstream table per source, and update ids (<id>@<lsn>) need a text id.
    IF EXISTS (SELECT FROM lake.cdc_mappings m WHERE m.source = p_source AND m.upstream_table <> p_upstream_table) THEN
        RAISE EXCEPTION 'source % already has a CDC mapping (%): the event ids of two upstream tables could collide',
            p_source, (SELECT string_agg(upstream_table, ', ') FROM lake.cdc_mappings WHERE source = p_source)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_on_update = 'land' AND lake._column_base_type(s.table_name, s.id_column) <> 'text' THEN
        RAISE EXCEPTION 'mapping of %: landing updates gives them ids <id>@<lsn>, which needs a text id column, not %',
            p_upstream_table, lake._column_base_type(s.table_name, s.id_column) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(k || '=' || v, ', ') INTO v_bad FROM jsonb_each_text(p_decode) AS d(k, v)
     WHERE v !~ '^(decimal:[0-9]+|micro_timestamp|timestamp|date)$';
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'mapping of %: unknown decoding %', p_upstream_table, v_bad
            USING ERRCODE = 'invalid_parameter_value', HINT = 'decimal:<scale>, micro_timestamp, timestamp or date';
    END IF;
    INSERT INTO lake.cdc_mappings (upstream_table, source, columns, decode, on_update)
    VALUES (p_upstream_table, p_source, p_columns, p_decode, p_on_update)
    ON CONFLICT (upstream_table) DO UPDATE
        SET source = EXCLUDED.source, columns = EXCLUDED.columns, decode = EXCLUDED.decode,
            on_update = EXCLUDED.on_update, created_at = now();
END $$;

-- Applies decoded changes (json objects: table, op, lsn, ts_ms, row: the row image with values decoded).
-- Creates and reads (snapshot) land their row as an event; updates land the new row image as a new
-- event (its id suffixed with @<lsn>) or are ignored, per mapping; deletes and truncates leave the
-- append-only landing table as it is (recorded, not applied). One row per change: 'landed',
-- 'duplicate' (already applied), 'ignored' or 'rejected' with the reason. Runs as the lake's owner.
CREATE OR REPLACE FUNCTION lake.apply_changes(p_changes jsonb)
RETURNS TABLE (idx int, status text, reason text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_source text;
    s lake.sources;
BEGIN
    -- Staging tables of this call's own (a caller's tables of these names are dropped, never reused).
    DROP TABLE IF EXISTS pg_temp.lake_changes;
    DROP TABLE IF EXISTS pg_temp.lake_changes_landed;
    CREATE TEMP TABLE lake_changes (
        idx int, change jsonb, upstream_table text, op text, lsn bigint, row_key text, source_ts timestamptz,
        source text, event jsonb, status text, reason text, first_idx int
    ) ON COMMIT DROP;
    CREATE TEMP TABLE lake_changes_landed (pos int, idx int, status text, reason text) ON COMMIT DROP;
    INSERT INTO pg_temp.lake_changes (idx, change, upstream_table, op, lsn, source_ts)
    SELECT e.i - 1, e.v, e.v ->> 'table', e.v ->> 'op', (e.v ->> 'lsn')::bigint,
           to_timestamp((e.v ->> 'ts_ms')::double precision / 1000)
      FROM jsonb_array_elements(p_changes) WITH ORDINALITY AS e(v, i);
    ANALYZE pg_temp.lake_changes;  -- so the joins below hash instead of comparing every pair

    UPDATE pg_temp.lake_changes c SET status = 'rejected',
           reason = format('no CDC mapping for upstream table %s (mapped: %s)', c.upstream_table,
                           coalesce((SELECT string_agg(upstream_table, ', ') FROM lake.cdc_mappings), 'none'))
     WHERE NOT EXISTS (SELECT FROM lake.cdc_mappings m WHERE m.upstream_table = c.upstream_table);

    -- The landing event of each change: mapped columns of the row image; the event time, when no
    -- upstream column maps to it, is the source commit time.
    UPDATE pg_temp.lake_changes c
       SET source = m.source,
           event = (SELECT coalesce(jsonb_object_agg(map.value, r.value), '{}')
                      FROM jsonb_each(c.change -> 'row') r
                      JOIN jsonb_each_text(m.columns) map ON map.key = r.key)
      FROM lake.cdc_mappings m
     WHERE m.upstream_table = c.upstream_table AND c.status IS NULL;
    UPDATE pg_temp.lake_changes c
       SET event = c.event || CASE WHEN c.event ? src.time_column::text THEN '{}'::jsonb
                                   ELSE jsonb_build_object(src.time_column::text, c.source_ts) END,
           row_key = c.event ->> src.id_column::text
      FROM lake.sources src
     WHERE src.name = c.source AND c.status IS NULL;
    UPDATE pg_temp.lake_changes c SET row_key = coalesce(c.row_key, '') WHERE c.status IS NULL;
    UPDATE pg_temp.lake_changes c SET event = jsonb_set(c.event, ARRAY[src.id_column::text],
                                                        to_jsonb(c.row_key || '@' || c.lsn))
      FROM lake.sources src
     WHERE src.name = c.source AND c.status IS NULL AND c.op = 'u';

    -- Already applied (a redelivery): nothing more.
    UPDATE pg_temp.lake_changes c SET status = 'duplicate'
     WHERE c.status IS NULL AND EXISTS (
         SELECT FROM lake.cdc_applied a WHERE a.upstream_table = c.upstream_table AND a.lsn = c.lsn
            AND a.row_key = c.row_key AND a.op = c.op);
    -- The same change twice in one batch: the first one applies, the others share its outcome (below).
    UPDATE pg_temp.lake_changes c SET status = 'duplicate', first_idx = d.f
      FROM (SELECT x.idx, first_value(x.idx) OVER (PARTITION BY x.upstream_table, x.lsn, x.row_key, x.op
                                                   ORDER BY x.idx) AS f
              FROM pg_temp.lake_changes x WHERE x.status IS NULL) d
     WHERE c.idx = d.idx AND d.f <> d.idx;

    -- A key created again upstream (at another source position than the create that landed it, after
    -- a delete): a new event, landed as <key>@<lsn> as an update is. Within one batch the smallest
    -- position keeps the plain key; across batches whichever landed first does. Snapshot reads ('r')
    -- of a key already landed stay duplicates: they read, they do not create.
    UPDATE pg_temp.lake_changes c SET event = jsonb_set(c.event, ARRAY[src.id_column::text],
                                                        to_jsonb(c.row_key || '@' || c.lsn))
      FROM lake.sources src
     WHERE src.name = c.source AND c.status IS NULL AND c.op = 'c'
       AND (EXISTS (SELECT FROM lake.cdc_applied a
                     WHERE a.upstream_table = c.upstream_table AND a.row_key = c.row_key AND a.lsn <> c.lsn
                       AND a.op IN ('c', 'r') AND a.outcome = 'landed')
            OR EXISTS (SELECT FROM pg_temp.lake_changes x
                        WHERE x.upstream_table = c.upstream_table AND x.row_key = c.row_key AND x.lsn < c.lsn
                          AND x.op IN ('c', 'r') AND x.status IS NULL));

    UPDATE pg_temp.lake_changes c SET status = 'ignored',
           reason = CASE c.op WHEN 'd' THEN 'delete: the landing table is append-only'
                              WHEN 't' THEN 'truncate: the landing table is append-only'
                              ELSE 'update: the mapping ignores updates' END
     WHERE c.status IS NULL
       AND (c.op IN ('d', 't')
            OR (c.op = 'u' AND (SELECT m.on_update FROM lake.cdc_mappings m WHERE m.upstream_table = c.upstream_table) = 'ignore'));

    FOR v_source IN SELECT DISTINCT c.source FROM pg_temp.lake_changes c WHERE c.status IS NULL LOOP
        -- land_events answers by position in the batch it was given; map positions back to changes.
        TRUNCATE pg_temp.lake_changes_landed;
        INSERT INTO pg_temp.lake_changes_landed (pos, idx)
        SELECT (row_number() OVER (ORDER BY x.idx) - 1)::int, x.idx
          FROM pg_temp.lake_changes x WHERE x.status IS NULL AND x.source = v_source;
        UPDATE pg_temp.lake_changes_landed p SET status = l.status, reason = l.reason
          FROM lake.land_events(v_source, (SELECT jsonb_agg(x.event ORDER BY x.idx) FROM pg_temp.lake_changes x
                                             WHERE x.status IS NULL AND x.source = v_source)) l
         WHERE p.pos = l.idx;
        ANALYZE pg_temp.lake_changes_landed;
        UPDATE pg_temp.lake_changes c SET status = p.status, reason = p.reason
          FROM pg_temp.lake_changes_landed p WHERE c.idx = p.idx;
    END LOOP;

    -- A repeat whose first copy was rejected is rejected too (it must keep failing until fixed).
    UPDATE pg_temp.lake_changes c SET status = f.status, reason = f.reason
      FROM pg_temp.lake_changes f
     WHERE c.first_idx = f.idx AND f.status = 'rejected';

    INSERT INTO lake.cdc_applied (upstream_table, lsn, op, row_key, source_ts, outcome)
    SELECT c.upstream_table, c.lsn, c.op, c.row_key, c.source_ts, c.status
      FROM pg_temp.lake_changes c
     WHERE c.status IN ('landed', 'ignored', 'duplicate') AND c.row_key IS NOT NULL AND c.first_idx IS NULL
    ON CONFLICT DO NOTHING;

    RETURN QUERY SELECT c.idx, c.status, c.reason FROM pg_temp.lake_changes c ORDER BY c.idx;
END $$;
COMMENT ON FUNCTION lake.apply_changes IS
    'applies decoded upstream changes through their CDC mappings, once each by source position';

-- Lag of change data capture per upstream table: applied minus source commit time, recent window.
CREATE OR REPLACE VIEW lake.cdc_lag AS
SELECT upstream_table, count(*) AS changes,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - source_ts)) AS p50_seconds,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - source_ts)) AS p99_seconds,
       max(extract(epoch FROM applied_at - source_ts)) AS max_seconds
  FROM lake.cdc_applied
 WHERE applied_at > now() - lake.setting('lag_window')::interval AND source_ts IS NOT NULL
 GROUP BY upstream_table;
COMMENT ON VIEW lake.cdc_lag IS 'per upstream table: p50/p99/max of applied minus source commit time (source.ts_ms)';

-- Keeps refused change events (json objects: event, reason, upstream_table, lsn, op) so that capture
-- goes on: a redelivered one counts an attempt on its row (and reopens it if it was resolved). Returns
-- each given index with its dead letter's id. Runs as the lake's owner.
CREATE OR REPLACE FUNCTION lake.dead_letter_changes(p_rejects jsonb)
RETURNS TABLE (idx int, id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH given AS (
        SELECT (e.i - 1)::int AS idx, e.v ->> 'event' AS event, sha256(convert_to(e.v ->> 'event', 'UTF8')) AS sha,
               e.v ->> 'reason' AS reason, e.v ->> 'upstream_table' AS upstream_table,
               (e.v ->> 'lsn')::bigint AS lsn, e.v ->> 'op' AS op
          FROM jsonb_array_elements(p_rejects) WITH ORDINALITY AS e(v, i)
    ), kept AS (
        INSERT INTO lake.cdc_dead_letters AS d (event, event_sha256, upstream_table, lsn, op, reason)
        SELECT f.event, f.sha, f.upstream_table, f.lsn, f.op, f.reason  -- in arrival order, once each
          FROM (SELECT DISTINCT ON (g.sha) g.* FROM given g ORDER BY g.sha, g.idx) f ORDER BY f.idx
        ON CONFLICT (event_sha256) DO UPDATE
            SET attempts = d.attempts + 1, last_seen_at = now(), reason = EXCLUDED.reason,
                resolved_at = NULL, resolution = NULL
        RETURNING d.id, d.event_sha256
    )
    SELECT g.idx, k.id FROM given g JOIN kept k ON k.event_sha256 = g.sha ORDER BY g.idx;
END $$;
COMMENT ON FUNCTION lake.dead_letter_changes(jsonb) IS
    'keeps refused change events in lake.cdc_dead_letters, once each by their text (a repeat counts an attempt)';

-- Settles dead letters after a replay or by hand: each id with its outcome ('landed', 'duplicate',
-- 'ignored', 'discarded') is resolved; with 'rejected' it stays open with the new reason and one more attempt.
CREATE OR REPLACE FUNCTION lake.settle_dead_letters(p_outcomes jsonb)
RETURNS int
LANGUAGE sql AS $$
    WITH o AS (
        SELECT (x ->> 'id')::bigint AS id, x ->> 'status' AS status, x ->> 'reason' AS reason
          FROM jsonb_array_elements(p_outcomes) AS x
    ), done AS (
        UPDATE lake.cdc_dead_letters d
           SET resolved_at = CASE WHEN o.status = 'rejected' THEN NULL ELSE now() END,
               resolution = CASE WHEN o.status = 'rejected' THEN NULL ELSE o.status END,
               reason = coalesce(o.reason, d.reason),
               attempts = d.attempts + CASE WHEN o.status = 'discarded' THEN 0 ELSE 1 END,
               last_seen_at = CASE WHEN o.status = 'discarded' THEN d.last_seen_at ELSE now() END
          FROM o WHERE d.id = o.id
        RETURNING 1
    )
    SELECT count(*)::int FROM done
$$;
COMMENT ON FUNCTION lake.settle_dead_letters(jsonb) IS
    'resolves replayed or discarded dead letters; a replay refused again keeps its letter open with the new reason';

-- Open dead letters per upstream table, for monitors and psql.
CREATE OR REPLACE VIEW lake.cdc_dead_letters_open AS
SELECT coalesce(upstream_table, '(unreadable)') AS upstream_table, count(*) AS open,
       min(first_seen_at) AS oldest, max(last_seen_at) AS newest, sum(attempts) AS attempts
  FROM lake.cdc_dead_letters WHERE resolved_at IS NULL
 GROUP BY 1;
COMMENT ON VIEW lake.cdc_dead_letters_open IS 'per upstream table: dead letters not yet replayed or discarded';
