-- contextlake engine, part 6: retention and verification.

-- ===========================================================================
-- Compaction
-- ===========================================================================

-- Raw events older than the returned time are no longer needed by any read at or after read_horizon.
CREATE OR REPLACE FUNCTION lake.retention_plan(p_now timestamptz DEFAULT now())
RETURNS TABLE (source text, longest_window interval, raw_before timestamptz, read_horizon timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT s.name, w.longest, r.raw_before, r.raw_before + w.longest
      FROM lake.sources s
      CROSS JOIN LATERAL (SELECT lake._fixed_interval(coalesce(max(f.window_length), interval '0')) AS longest
                            FROM lake.features f WHERE f.source = s.name) AS w
      CROSS JOIN LATERAL (SELECT date_bin('1 day', p_now
                                  - lake._fixed_interval(greatest(w.longest, lake.setting('min_raw_retention')::interval))
                                  - lake._fixed_interval(greatest(lake.setting('retention_grace')::interval, interval '1 hour')),
                                  timestamptz 'epoch') AS raw_before) AS r
     WHERE s.kind = 'events'
$$;
COMMENT ON FUNCTION lake.retention_plan(timestamptz) IS 'what compaction may drop: raw events and window tiles before raw_before; reads before read_horizon become refused';

-- Drops raw events and window tiles no read at or after the read horizon needs; returns what it removed.
CREATE OR REPLACE FUNCTION lake.compact(p_now timestamptz DEFAULT now())
RETURNS TABLE (source text, raw_deleted bigint, tiles_deleted bigint, read_horizon timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    s lake.sources;
    n_raw bigint;
    n_tiles bigint;
BEGIN
    PERFORM set_config('lake.compacting', 'on', true);
    FOR p IN SELECT * FROM lake.retention_plan(p_now) ORDER BY 1 LOOP
        SELECT * INTO STRICT s FROM lake.sources WHERE name = p.source FOR UPDATE;
        EXECUTE format('SELECT count(*) FROM %s WHERE %I < $1', s.table_name, s.time_column) INTO n_raw USING p.raw_before;
        -- The events removed are folded into the entity's archive row, so lifetime values stay exact.
        EXECUTE format('WITH lake_d AS (DELETE FROM %s WHERE %I < $1 RETURNING *), ', s.table_name, s.time_column)
                || lake._last_values_cte(s.name, 'lake_d') || ' '
                || lake._fold_life_sql(s.name, format('lake_gen.%I', s.name || '_tiles'), -1, false)
          USING p.raw_before;
        -- Locked in key order, as the maintenance trigger locks them, so a late event cannot deadlock with it.
        EXECUTE format('DELETE FROM lake_gen.%1$I AS t USING (SELECT entity, grain, tile_start FROM lake_gen.%1$I '
                       || 'WHERE grain > 0 AND tile_start < $1 ORDER BY 1, 2, 3 FOR UPDATE) AS old '
                       || 'WHERE (t.entity, t.grain, t.tile_start) = (old.entity, old.grain, old.tile_start)', s.name || '_tiles')
          USING p.raw_before;
        GET DIAGNOSTICS n_tiles = ROW_COUNT;
        IF n_raw > 0 OR n_tiles > 0 THEN
            UPDATE lake.sources SET compacted_before = greatest(compacted_before, p.read_horizon) WHERE name = s.name;
        END IF;
        source := s.name; raw_deleted := n_raw; tiles_deleted := n_tiles; read_horizon := p.read_horizon;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('lake.compacting', 'off', true);
END
$$;
COMMENT ON FUNCTION lake.compact(timestamptz) IS 'retention: removes raw events and tiles older than the longest window needs, without changing any read at or after the horizon';

-- Schedules compaction with pg_cron where that extension is installed.
CREATE OR REPLACE FUNCTION lake.schedule_compaction(p_cron text DEFAULT '17 * * * *') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING HINT = 'run contextlake compact from cron or a systemd timer instead', ERRCODE = 'undefined_object';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job USING 'contextlake-compact', p_cron, 'SELECT * FROM lake.compact()';
    RETURN job;
END
$$;
COMMENT ON FUNCTION lake.schedule_compaction(text) IS 'optional: a pg_cron job that runs lake.compact() on a schedule';

-- ===========================================================================
-- Verification: maintained state against a fold of the raw events
-- ===========================================================================

-- Every state row that differs from a from-scratch recomputation over the raw events of its source.
CREATE OR REPLACE FUNCTION lake.verify_state() RETURNS TABLE (source text, entity text, grain int, tile_start timestamptz, problem text)
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    q lake._state_sql;
    cols text;
    differs text;
    target text;
BEGIN
    FOR s IN SELECT * FROM lake.sources WHERE kind = 'events' ORDER BY name LOOP
        q := lake._state_sql(s.name);
        target := format('lake_gen.%I', s.name || '_tiles');
        -- The same folds the trigger runs, over the whole landing table, into a scratch table:
        -- lifetime rows (plus the archive of compacted events) and the tiles of every entity.
        EXECUTE format('CREATE TEMP TABLE lake_verify (LIKE %s INCLUDING ALL) ON COMMIT DROP', target);
        EXECUTE 'WITH ' || lake._last_values_cte(s.name, s.table_name::text) || ' '
                || lake._fold_life_sql(s.name, 'pg_temp.lake_verify', 0, false);
        EXECUTE format('INSERT INTO pg_temp.lake_verify AS t (entity, grain, tile_start, %1$s%2$s) '
                       || 'SELECT entity, 0, tile_start, %1$s%2$s FROM %3$s WHERE grain = -1 '
                       || 'ON CONFLICT (entity, grain, tile_start) DO UPDATE SET %4$s',
                       q.agg_names, q.dst_names, target, q.on_conflict);
        IF cardinality(s.grains) > 0 THEN
            EXECUTE lake._fold_tiles_sql(s.name, s.table_name::text, 'pg_temp.lake_verify', false);
        END IF;
        -- Aggregates compare exactly, float sums to 1e-9 relative (summed in another order), json as
        -- text, distinct arrays as sets; bookkeeping columns are not state.
        SELECT string_agg(format('%1$s.%2$I', '%1$s', a.attname), ', ' ORDER BY a.attnum),
               string_agg(CASE
                   WHEN a.atttypid IN ('float4'::regtype, 'float8'::regtype)
                   THEN format('(m.%1$I IS NULL) <> (r.%1$I IS NULL) OR abs(m.%1$I - r.%1$I) > 1e-9 * greatest(1, abs(r.%1$I))', a.attname)
                   WHEN a.atttypid IN ('json'::regtype, 'json[]'::regtype)
                   THEN format('m.%1$I::text IS DISTINCT FROM r.%1$I::text', a.attname)
                   WHEN a.attname LIKE 'dst\_\_%'
                   THEN format('(SELECT array_agg(v ORDER BY v) FROM unnest(m.%1$I) v) IS DISTINCT FROM '
                               || '(SELECT array_agg(v ORDER BY v) FROM unnest(r.%1$I) v)', a.attname)
                   ELSE format('m.%1$I IS DISTINCT FROM r.%1$I', a.attname) END, ' OR ' ORDER BY a.attnum)
          INTO cols, differs
          FROM pg_attribute a
         WHERE a.attrelid = target::regclass AND a.attnum > 3 AND NOT a.attisdropped
           AND a.attname NOT IN ('tiled_since', 'land_day', 'land_n');
        -- Tiles are compared where reads use them: for tiled entities, from their first complete tile on.
        RETURN QUERY EXECUTE format(
            'SELECT %1$L::text, coalesce(m.entity, r.entity)::text, coalesce(m.grain, r.grain), coalesce(m.tile_start, r.tile_start), '
            || 'CASE WHEN m.entity IS NULL THEN ''missing from state'' WHEN r.entity IS NULL THEN ''in state but not in raw events'' '
            || 'ELSE ''state '' || row(%2$s)::text || '' <> raw '' || row(%3$s)::text END '
            || 'FROM (SELECT * FROM %4$s WHERE grain >= 0) m FULL JOIN pg_temp.lake_verify r USING (entity, grain, tile_start) '
            || 'LEFT JOIN %4$s life ON life.entity = coalesce(m.entity, r.entity) AND life.grain = 0 AND life.tile_start = ''-infinity'' '
            || 'WHERE (m.entity IS NULL OR r.entity IS NULL OR %5$s) '
            || '  AND (coalesce(m.grain, r.grain) = 0 OR (life.tiled_since IS NOT NULL '
            || '       AND coalesce(m.tile_start, r.tile_start) >= CASE WHEN life.tiled_since = ''-infinity'' THEN ''-infinity'' '
            || '           ELSE date_bin(make_interval(secs => coalesce(m.grain, r.grain)), life.tiled_since, timestamptz ''epoch'') '
            || '                + make_interval(secs => coalesce(m.grain, r.grain)) END '
            || '       AND coalesce(m.tile_start, r.tile_start) >= coalesce($1, ''-infinity'')))',
            s.name, format(cols, 'm'), format(cols, 'r'), target, differs)
          USING s.compacted_before;
        DROP TABLE pg_temp.lake_verify;
    END LOOP;
END
$$;
COMMENT ON FUNCTION lake.verify_state() IS 'recomputes every source''s state from its raw events (and the archive of compacted ones) and lists each row that differs';
