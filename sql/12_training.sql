-- Point-in-time training sets: labels in the catalog, and the export statement generated from it.
--
-- A label names an events source (what is scored) and a label source (what marks an event, e.g. a
-- chargeback naming the transaction it disputes, reported days later). A training row is one event of
-- the events source: its feature vector read by the feature set's own generated read function as of
-- just before the event (so neither the event itself nor anything later is in it), with the event row
-- as the request payload (as /v1/decide reads it; the landing time, which comes after the event, is
-- left out), and its label as known at a cutoff: true when a
-- label row naming the event was reported at or before the cutoff.

CREATE OR REPLACE FUNCTION lake.define_label(p_name text, p_events_source text, p_label_source text, p_event_column name)
RETURNS lake.labels
LANGUAGE plpgsql AS $$
DECLARE
    ev lake.sources;
    lb lake.sources;
    v_row lake.labels;
BEGIN
    ev := lake._events_source(p_events_source);
    lb := lake._events_source(p_label_source);
    IF ev.id_column IS NULL THEN
        RAISE EXCEPTION 'events source % has no event id column: labels name events by id', p_events_source
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = lb.table_name AND attname = p_event_column
                                              AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'label source % (%) has no column %', p_label_source, lb.table_name, p_event_column
            USING ERRCODE = 'undefined_column';
    END IF;
    INSERT INTO lake.labels (name, events_source, label_source, event_column)
    VALUES (p_name, p_events_source, p_label_source, p_event_column)
    RETURNING * INTO v_row;
    RETURN v_row;
END $$;
COMMENT ON FUNCTION lake.define_label(text, text, text, name) IS 'defines a training label: rows of a label source naming events of an events source by id';

-- The events a label's training set can draw from, within [p_start, p_end) when given.
CREATE OR REPLACE FUNCTION lake.label_events(p_label text, p_start timestamptz DEFAULT NULL, p_end timestamptz DEFAULT NULL)
RETURNS TABLE (first_event timestamptz, last_event timestamptz, events bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ev lake.sources;
BEGIN
    SELECT s.* INTO ev FROM lake.labels l JOIN lake.sources s ON s.name = l.events_source WHERE l.name = p_label;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown label %', p_label USING ERRCODE = 'undefined_object',
            HINT = coalesce((SELECT 'defined: ' || string_agg(name, ', ' ORDER BY name) FROM lake.labels),
                            'define one with lake.define_label(name, events_source, label_source, event_column)');
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT min(%1$I), max(%1$I), count(*) FROM %2$s WHERE ($1 IS NULL OR %1$I >= $1) AND ($2 IS NULL OR %1$I < $2)',
        ev.time_column, ev.table_name) USING p_start, p_end;
END $$;
COMMENT ON FUNCTION lake.label_events(text, timestamptz, timestamptz) IS 'first and last event time and event count of a label''s events source, within a period';

-- The export statement of one feature set version and one label, for events with start <= time < end
-- (and time <= cutoff), in (time, id as text in byte order) order. Each row: event_id, entity,
-- event_time, as_of, label, the set's features in its order, then rule_hits (whether each rule of the
-- set fired, in rule order). p_offset is how long before its event a row's vector is read:
-- 1 microsecond for training (the freshest vector that excludes the event), longer to see what a
-- store lagging by that much would have served. p_part of p_parts splits the events by entity, for
-- exports read by several connections at once (each part is in the same order).
CREATE OR REPLACE FUNCTION lake.training_statement(
    p_feature_set text, p_version int, p_label text,
    p_start timestamptz, p_end timestamptz, p_cutoff timestamptz,
    p_offset interval DEFAULT '1 microsecond', p_part int DEFAULT 0, p_parts int DEFAULT 1)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    fs lake.feature_sets;
    lbl lake.labels;
    ev lake.sources;
    lb lake.sources;
    v_features text;
BEGIN
    SELECT * INTO fs FROM lake.feature_sets WHERE name = p_feature_set AND version = p_version;
    IF NOT FOUND OR fs.read_function IS NULL THEN
        RAISE EXCEPTION 'unknown feature set %, version %', p_feature_set, p_version USING ERRCODE = 'undefined_object',
            HINT = (SELECT 'defined: ' || string_agg(name || ' v' || version, ', ' ORDER BY name, version) FROM lake.feature_sets);
    END IF;
    SELECT * INTO lbl FROM lake.labels WHERE name = p_label;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown label %', p_label USING ERRCODE = 'undefined_object',
            HINT = coalesce((SELECT 'defined: ' || string_agg(name, ', ' ORDER BY name) FROM lake.labels),
                            'define one with lake.define_label(name, events_source, label_source, event_column)');
    END IF;
    IF p_offset IS NULL OR p_offset <= interval '0' THEN
        RAISE EXCEPTION 'a training vector is read before its event: the offset must be positive, got %', p_offset
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_parts IS NULL OR p_parts < 1 OR p_part IS NULL OR p_part < 0 OR p_part >= p_parts THEN
        RAISE EXCEPTION 'part % of %: parts count from 0 to parts - 1', p_part, p_parts USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_start IS NULL OR p_end IS NULL OR p_cutoff IS NULL OR p_start >= p_end THEN
        RAISE EXCEPTION 'training period [%, %) with cutoff %: start, end and cutoff are required and start < end',
            p_start, p_end, p_cutoff USING ERRCODE = 'invalid_parameter_value';
    END IF;
    ev := lake._events_source(lbl.events_source);
    lb := lake._events_source(lbl.label_source);
    SELECT string_agg(format('v.%I', f), ', ' ORDER BY i) INTO v_features FROM unnest(fs.features) WITH ORDINALITY AS u(f, i);
    RETURN format(
        'SELECT e.%1$I::text AS event_id, v.entity, e.%2$I AS event_time, v.as_of, '
        || 'EXISTS (SELECT FROM %3$s AS l WHERE l.%4$I::text = e.%1$I::text AND l.%5$I <= %6$L::timestamptz) AS label, %7$s, v.rules AS rule_hits '
        || 'FROM (SELECT * FROM %8$s AS x WHERE x.%2$I >= %9$L::timestamptz AND x.%2$I < %10$L::timestamptz '
        || 'AND x.%2$I <= %6$L::timestamptz %14$s ORDER BY x.%2$I, x.%1$I::text COLLATE "C") AS e '
        || 'CROSS JOIN LATERAL %11$s(e.%12$I::text, e.%2$I - %13$L::interval, to_jsonb(e) %15$s) AS v '
        || 'ORDER BY e.%2$I, e.%1$I::text COLLATE "C"',
        ev.id_column, ev.time_column, lb.table_name, lbl.event_column, lb.time_column, p_cutoff, v_features,
        ev.table_name, p_start, p_end, fs.read_function::oid::regproc, ev.entity_column, p_offset,
        CASE WHEN p_parts > 1
             THEN format('AND abs(hashtext(x.%I::text) %% %s) = %s', ev.entity_column, p_parts, p_part) ELSE '' END,
        CASE WHEN ev.landed_column IS NOT NULL THEN format('- %L', ev.landed_column) ELSE '' END);
END $$;
COMMENT ON FUNCTION lake.training_statement(text, int, text, timestamptz, timestamptz, timestamptz, interval, int, int) IS 'the point-in-time training export of a feature set and a label: one row per event, its vector as of just before it, its label as known at the cutoff';
