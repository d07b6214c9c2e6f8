-- contextlake engine, part 5: freshness, measured and queryable with psql.

-- Per stored feature: the newest event its source landed, whether the state has absorbed it, and how old it is now.
CREATE OR REPLACE FUNCTION lake.feature_freshness_now() RETURNS TABLE (
    feature text, kind text, source text, newest_event_id text, newest_event_time timestamptz,
    landed_at timestamptz, state_committed_at timestamptz, absorbed boolean, age interval, age_seconds double precision
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
    commit_ts boolean := current_setting('track_commit_timestamp') = 'on';
    ev record;
BEGIN
    FOR s IN SELECT * FROM lake.sources ORDER BY name LOOP
        ev := NULL;
        IF s.kind = 'events' THEN
            -- Newest landed event (the BRIN index finds recent rows; older lakes fall back to a full max).
            EXECUTE format(
                'SELECT e.%1$I::text AS id, e.%2$I AS t, e.%3$I AS landed, e.%4$I::text AS entity, '
                || 'CASE WHEN $2 THEN pg_xact_commit_timestamp(st.xmin) END AS committed, st.last_t >= e.%2$I AS absorbed '
                || 'FROM %5$s AS e LEFT JOIN lake_gen.%6$I AS st '
                || 'ON st.entity = e.%4$I AND st.grain = 0 AND st.tile_start = ''-infinity'' '
                || 'WHERE e.%3$I >= coalesce((SELECT max(%3$I) FROM %5$s WHERE %3$I > now() - $1), (SELECT max(%3$I) FROM %5$s)) '
                || 'ORDER BY e.%3$I DESC, e.%2$I DESC LIMIT 1',
                s.id_column, s.time_column, s.landed_column, s.entity_column, s.table_name, s.name || '_tiles')
              INTO ev USING lake.setting('lag_window')::interval, commit_ts;
        ELSE
            EXECUTE format(
                'SELECT NULL::text AS id, max(%1$I) AS t, max(%1$I) AS landed, '
                || 'CASE WHEN $1 THEN max(pg_xact_commit_timestamp(xmin)) END AS committed, true AS absorbed '
                || 'FROM %2$s WHERE %1$I = (SELECT max(%1$I) FROM %2$s)',
                s.time_column, s.table_name)
              INTO ev USING commit_ts;
        END IF;
        RETURN QUERY
            SELECT f.name, f.kind, s.name, ev.id, ev.t, ev.landed, ev.committed, ev.absorbed,
                   now() - ev.t, extract(epoch FROM now() - ev.t)::double precision
              FROM lake.features f WHERE f.source = s.name ORDER BY f.name;
    END LOOP;
END
$$;
COMMENT ON FUNCTION lake.feature_freshness_now() IS 'body of lake.feature_freshness (a function because each source is its own table)';

CREATE OR REPLACE VIEW lake.feature_freshness AS SELECT * FROM lake.feature_freshness_now();
COMMENT ON VIEW lake.feature_freshness IS 'per feature: newest event absorbed, its event time, commit time of the state, age now';

-- Per landing table: distribution of landed minus event time over the recent window.
CREATE OR REPLACE FUNCTION lake.ingest_lag_over(p_window interval) RETURNS TABLE (
    source text, events bigint, p50_seconds double precision, p95_seconds double precision,
    p99_seconds double precision, max_seconds double precision, since timestamptz
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
BEGIN
    FOR s IN SELECT * FROM lake.sources WHERE kind = 'events' ORDER BY name LOOP
        RETURN QUERY EXECUTE format(
            'SELECT %1$L::text, count(*), '
            || 'percentile_cont(0.50) WITHIN GROUP (ORDER BY lag), percentile_cont(0.95) WITHIN GROUP (ORDER BY lag), '
            || 'percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag), now() - $1 '
            || 'FROM (SELECT extract(epoch FROM %2$I - %3$I)::double precision AS lag FROM %4$s WHERE %2$I > now() - $1) AS x',
            s.name, s.landed_column, s.time_column, s.table_name) USING p_window;
    END LOOP;
END
$$;
COMMENT ON FUNCTION lake.ingest_lag_over(interval) IS 'ingest lag (landed minus source event time) percentiles per landing table over any window';

CREATE OR REPLACE VIEW lake.ingest_lag AS SELECT * FROM lake.ingest_lag_over(lake.setting('lag_window')::interval);
COMMENT ON VIEW lake.ingest_lag IS 'per landing table: p50/p95/p99/max of landed minus event time over lake.settings lag_window';
