-- contextlake engine, part 9: landing batches of events from clients (REST, bulk files, CDC).
-- A batch lands in one INSERT (the maintenance trigger folds it set-wise); a batch holding a bad
-- event falls back to one subtransaction per event, so the bad ones are named and the good ones land.

-- Per event of a batch: the reason it cannot land, from its shape alone (NULL: it may land). Unsafe
-- (p_safe false) it casts the event time without a subtransaction and raises on a bad one, which is
-- cheap for the usual batch; the caller then checks again safely.
CREATE OR REPLACE FUNCTION lake._event_problem(s lake.sources, p_event jsonb, p_columns text[], p_max_future interval,
                                    p_safe boolean, p_numeric text[])
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_unknown text;
    v_time timestamptz;
BEGIN
    IF jsonb_typeof(p_event) IS DISTINCT FROM 'object' THEN
        RETURN 'an event is a json object keyed by column';
    END IF;
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(p_event) k WHERE k <> ALL (p_columns);
    IF v_unknown IS NOT NULL THEN
        RETURN format('unknown column(s) %s (columns: %s)', v_unknown, array_to_string(p_columns, ', '));
    END IF;
    -- NaN and infinities would pass a numeric or float column's type and most CHECKs: never an amount.
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_each_text(p_event) AS x(k, v)
     WHERE k = ANY (p_numeric) AND v ~* '^\s*[+-]?(nan|inf|infinity)\s*$';
    IF v_unknown IS NOT NULL THEN
        RETURN format('%s: not a finite number', v_unknown);
    END IF;
    IF s.landed_column IS NOT NULL AND p_event ? s.landed_column::text THEN
        RETURN format('%s is set by the lake when the event lands', s.landed_column);
    END IF;
    IF s.id_column IS NOT NULL AND jsonb_typeof(p_event -> s.id_column::text) IS DISTINCT FROM 'string'
       AND jsonb_typeof(p_event -> s.id_column::text) IS DISTINCT FROM 'number' THEN
        RETURN format('%s (the event id) is required', s.id_column);
    END IF;
    IF jsonb_typeof(p_event -> s.entity_column::text) IS DISTINCT FROM 'string'
       AND jsonb_typeof(p_event -> s.entity_column::text) IS DISTINCT FROM 'number' THEN
        RETURN format('%s (the entity) is required', s.entity_column);
    END IF;
    IF jsonb_typeof(p_event -> s.time_column::text) IS DISTINCT FROM 'string' THEN
        RETURN format('%s (the source''s event time, ISO 8601 with a zone) is required', s.time_column);
    END IF;
    IF (p_event ->> s.time_column::text) !~ '[T ]\d\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$' THEN
        RETURN format('%s needs a time zone (e.g. 2026-11-24T07:00:00Z): %s', s.time_column, p_event ->> s.time_column::text);
    END IF;
    IF p_safe THEN
        BEGIN
            v_time := (p_event ->> s.time_column::text)::timestamptz;
        EXCEPTION WHEN data_exception THEN
            RETURN format('%s: %s', s.time_column, SQLERRM);
        END;
    ELSE
        v_time := (p_event ->> s.time_column::text)::timestamptz;
    END IF;
    IF s.compacted_before IS NOT NULL AND v_time < s.compacted_before THEN
        RETURN format('%s %s is before the source''s compaction horizon %s: events that old are folded into the '
                      'archive, so a redelivered one could not be told from a new one', s.time_column, v_time,
                      s.compacted_before);
    END IF;
    IF v_time > now() + p_max_future THEN
        RETURN format('%s %s is more than %s ahead of the lake''s clock', s.time_column, v_time, p_max_future);
    END IF;
    IF isfinite(v_time) IS NOT TRUE THEN
        RETURN format('%s must be a finite time', s.time_column);
    END IF;
    IF v_time < lake.earliest_event_time() THEN
        RETURN format('%s %s is before %s, the earliest event time the lake takes', s.time_column, v_time,
                      lake.earliest_event_time());
    END IF;
    RETURN NULL;
END $$;

-- Lands a batch of events (a json array of objects keyed by landing column) in a source's landing
-- table. One row per event, in batch order: 'landed', 'duplicate' (an event with that id had landed:
-- nothing lands twice) or 'rejected' with the reason. Runs as the lake's owner.
CREATE OR REPLACE FUNCTION lake.land_events(p_source text, p_events jsonb)
RETURNS TABLE (idx int, event_id text, status text, reason text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s lake.sources;
    v_columns text[];
    v_max_future interval := lake.setting('max_event_future')::interval;
    v_insert text;
    v_select text;
    v_keyset text;
    v_numeric text[];
    r record;
    v_id text;
BEGIN
    s := lake._events_source(p_source);
    IF jsonb_typeof(p_events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'events must be a json array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO v_columns
      FROM pg_attribute a
     WHERE a.attrelid = s.table_name AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
    SELECT coalesce(array_agg(a.attname::text), '{}') INTO v_numeric
      FROM pg_attribute a
     WHERE a.attrelid = s.table_name AND a.attnum > 0 AND NOT a.attisdropped
       AND a.atttypid IN ('numeric'::regtype, 'real'::regtype, 'double precision'::regtype);

    -- A staging table of this call's own: a caller's table of that name (with triggers of its own) is
    -- dropped, never reused, since this function runs as the lake's owner.
    DROP TABLE IF EXISTS pg_temp.lake_batch;
    CREATE TEMP TABLE lake_batch (
        idx int, event jsonb, problem text, event_id text, status text, first boolean NOT NULL DEFAULT true,
        keyset text
    ) ON COMMIT DROP;
    BEGIN
        INSERT INTO pg_temp.lake_batch (idx, event, problem, event_id)
        SELECT e.i - 1, e.v, lake._event_problem(s, e.v, v_columns, v_max_future, false, v_numeric), e.v ->> s.id_column::text
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(v, i);
    EXCEPTION WHEN data_exception THEN  -- an event time that looks like one but is not: check one by one
        INSERT INTO pg_temp.lake_batch (idx, event, problem, event_id)
        SELECT e.i - 1, e.v, lake._event_problem(s, e.v, v_columns, v_max_future, true, v_numeric), e.v ->> s.id_column::text
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(v, i);
    END;
    UPDATE pg_temp.lake_batch b SET keyset = (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(b.event) k)
     WHERE b.problem IS NULL;
    ANALYZE pg_temp.lake_batch;  -- so the joins below hash instead of comparing every pair
    -- An id given twice in one batch: its first occurrence lands, the others are duplicates.
    UPDATE pg_temp.lake_batch b SET first = false
      FROM (SELECT x.event_id, min(x.idx) AS m FROM pg_temp.lake_batch x WHERE x.problem IS NULL
             GROUP BY x.event_id HAVING count(*) > 1) d
     WHERE b.problem IS NULL AND b.event_id = d.event_id AND b.idx > d.m;

    IF NOT EXISTS (SELECT FROM pg_temp.lake_batch b WHERE b.problem IS NULL) THEN  -- nothing well-formed
        RETURN QUERY SELECT b.idx, b.event_id, 'rejected'::text, b.problem FROM pg_temp.lake_batch b ORDER BY b.idx;
        RETURN;
    END IF;
    BEGIN
        -- Fast path: the well-formed events in one statement per set of columns they name (usually one),
        -- so a column an event leaves out takes its default.
        FOR v_keyset IN SELECT DISTINCT b.keyset FROM pg_temp.lake_batch b WHERE b.problem IS NULL LOOP
            SELECT string_agg(quote_ident(c), ', ' ORDER BY array_position(v_columns, c)),
                   string_agg('r.' || quote_ident(c), ', ' ORDER BY array_position(v_columns, c))
              INTO v_insert, v_select
              FROM unnest(string_to_array(v_keyset, ',')) c;
            EXECUTE format(
                'WITH ins AS (INSERT INTO %1$s (%2$s) SELECT %6$s FROM pg_temp.lake_batch b, '
                'jsonb_populate_record(NULL::%1$s, b.event) r WHERE b.problem IS NULL AND b.keyset = $1 '
                'ORDER BY b.idx %3$s RETURNING %4$s AS id) '
                'UPDATE pg_temp.lake_batch b SET status = ''landed'' FROM ins '
                'WHERE b.problem IS NULL AND b.first AND b.keyset = $1 AND %5$s',
                s.table_name, v_insert,
                CASE WHEN s.id_column IS NULL THEN '' ELSE format('ON CONFLICT (%I) DO NOTHING', s.id_column) END,
                coalesce(format('%I::text', s.id_column), 'NULL::text'),
                -- the id as the column has it ('007' lands as 7 in a bigint column): every event here cast cleanly
                CASE WHEN s.id_column IS NULL THEN 'true'
                     ELSE format('(b.event_id::%s)::text = ins.id', lake._column_base_type(s.table_name, s.id_column)) END,
                v_select)
                USING v_keyset;
        END LOOP;
        IF s.id_column IS NULL THEN  -- without ids every well-formed event landed
            UPDATE pg_temp.lake_batch b SET status = 'landed' WHERE b.problem IS NULL;
        END IF;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR undefined_column THEN
        -- Slow path: one subtransaction per event, to name the bad ones.
        UPDATE pg_temp.lake_batch SET status = NULL;
        FOR r IN SELECT b.idx, b.event FROM pg_temp.lake_batch b WHERE b.problem IS NULL ORDER BY b.idx LOOP
            BEGIN
                EXECUTE format(
                    'INSERT INTO %1$s (%2$s) SELECT %3$s FROM jsonb_populate_record(NULL::%1$s, $1) r %4$s RETURNING %5$s',
                    s.table_name,
                    (SELECT string_agg(quote_ident(k), ', ') FROM jsonb_object_keys(r.event) k),
                    (SELECT string_agg('r.' || quote_ident(k), ', ') FROM jsonb_object_keys(r.event) k),
                    CASE WHEN s.id_column IS NULL THEN '' ELSE format('ON CONFLICT (%I) DO NOTHING', s.id_column) END,
                    coalesce(format('%I::text', s.id_column), 'NULL::text'))
                    INTO v_id USING r.event;
                UPDATE pg_temp.lake_batch b SET status = CASE WHEN v_id IS NULL AND s.id_column IS NOT NULL
                                                              THEN NULL ELSE 'landed' END
                 WHERE b.idx = r.idx;
            EXCEPTION WHEN data_exception OR integrity_constraint_violation OR undefined_column THEN
                UPDATE pg_temp.lake_batch b SET problem = SQLERRM WHERE b.idx = r.idx;
            END;
        END LOOP;
    END;
    RETURN QUERY
    SELECT b.idx, b.event_id,
           CASE WHEN b.problem IS NOT NULL THEN 'rejected' WHEN b.status = 'landed' THEN 'landed' ELSE 'duplicate' END,
           b.problem
      FROM pg_temp.lake_batch b
     ORDER BY b.idx;
END $$;
COMMENT ON FUNCTION lake.land_events IS
    'lands a batch of events of one source: one statement when all are good, else event by event; each event landed, duplicate or rejected with its reason';
