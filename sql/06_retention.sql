-- contextlake engine, part 6: retention and verification.

-- ===========================================================================
-- Compaction
-- ===========================================================================

-- Raw events older than the returned time are no longer needed by any read at or after read_horizon.
CREATE FUNCTION lake.retention_plan(p_now timestamptz DEFAULT now())
RETURNS TABLE (source text, longest_window interval, raw_before timestamptz, read_horizon timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT s.name, w.longest,
           date_bin('1 day', p_now - greatest(w.longest, lake.setting('min_raw_retention')::interval)
                             - greatest(lake.setting('retention_grace')::interval, interval '1 hour'), timestamptz 'epoch'),
           date_bin('1 day', p_now - greatest(w.longest, lake.setting('min_raw_retention')::interval)
                             - greatest(lake.setting('retention_grace')::interval, interval '1 hour'), timestamptz 'epoch')
             + w.longest
      FROM lake.sources s
      CROSS JOIN LATERAL (SELECT coalesce(max(f.window_length), interval '0') AS longest
                            FROM lake.features f WHERE f.source = s.name) AS w
     WHERE s.kind = 'events'
$$;
COMMENT ON FUNCTION lake.retention_plan(timestamptz) IS 'what compaction may drop: raw events and window tiles before raw_before; reads before read_horizon become refused';

-- Drops raw events and window tiles no read at or after the read horizon needs; returns what it removed.
CREATE FUNCTION lake.compact(p_now timestamptz DEFAULT now())
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
        EXECUTE format('DELETE FROM %s WHERE %I < $1', s.table_name, s.time_column) USING p.raw_before;
        GET DIAGNOSTICS n_raw = ROW_COUNT;
        -- Lifetime rows and day tiles stay: they are the lifetime history as-of reads sum.
        EXECUTE format('DELETE FROM lake_gen.%I WHERE grain NOT IN (0, 86400) AND tile_start < $1', s.name || '_tiles')
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
CREATE FUNCTION lake.schedule_compaction(p_cron text DEFAULT '17 * * * *') RETURNS bigint
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
CREATE FUNCTION lake.verify_state() RETURNS TABLE (source text, entity text, grain int, tile_start timestamptz, problem text)
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    q lake._state_sql;
    cols text;
BEGIN
    FOR s IN SELECT * FROM lake.sources WHERE kind = 'events' ORDER BY name LOOP
        q := lake._state_sql(s.name);
        -- The same fold the trigger runs, over the whole landing table, into a scratch table.
        EXECUTE format('CREATE TEMP TABLE lake_verify (LIKE lake_gen.%I INCLUDING ALL) ON COMMIT DROP', s.name || '_tiles');
        EXECUTE replace(lake._fold_sql(s.name, s.table_name::text),
                        format('lake_gen.%I', s.name || '_tiles'), 'pg_temp.lake_verify');
        -- Distinct arrays compare as sets; everything else exactly.
        SELECT string_agg(
                   CASE WHEN a.attname LIKE 'dst\_%'
                        THEN format('(SELECT array_agg(v ORDER BY v) FROM unnest(%1$s.%2$I) v)', '%1$s', a.attname)
                        ELSE format('%1$s.%2$I', '%1$s', a.attname) END, ', ' ORDER BY a.attnum)
          INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = format('lake_gen.%I', s.name || '_tiles')::regclass AND a.attnum > 3 AND NOT a.attisdropped;
        RETURN QUERY EXECUTE format(
            'SELECT %1$L::text, coalesce(m.entity, r.entity)::text, coalesce(m.grain, r.grain), coalesce(m.tile_start, r.tile_start), '
            || 'CASE WHEN m.entity IS NULL THEN ''missing from state'' WHEN r.entity IS NULL THEN ''in state but not in raw events'' '
            || 'ELSE ''state '' || row(%2$s)::text || '' <> raw '' || row(%3$s)::text END '
            || 'FROM lake_gen.%4$I m FULL JOIN pg_temp.lake_verify r USING (entity, grain, tile_start) '
            || 'WHERE (m.entity IS NULL OR r.entity IS NULL OR row(%2$s) IS DISTINCT FROM row(%3$s)) '
            || '  AND ($1::timestamptz IS NULL OR (coalesce(m.grain, r.grain) <> 0 AND coalesce(m.tile_start, r.tile_start) >= $1))',
            s.name, format(cols, 'm'), format(cols, 'r'), s.name || '_tiles')
          USING s.compacted_before;
        DROP TABLE pg_temp.lake_verify;
    END LOOP;
END
$$;
COMMENT ON FUNCTION lake.verify_state() IS 'recomputes every source''s state from its raw events and lists each row that differs (only rows the retained raw events cover, once compacted)';
