-- contextlake engine, part 11: native logical replication into the lake (the container-free CDC path).
-- The subscription's apply worker runs with session_replication_role = replica: it fires row triggers
-- enabled REPLICA or ALWAYS, never statement triggers, so the statement-level maintenance does not run
-- for replicated rows. A source fed by a subscription gets a row-level twin of its maintenance,
-- enabled REPLICA: it fires in the apply worker only, and local inserts keep the statement trigger.

-- The row-level replica maintenance function of a source: the same single-event upsert and tile fold
-- as the statement-level maintenance, reading the row from NEW instead of the transition table.
CREATE OR REPLACE FUNCTION lake._generate_replica_row_function(p_source text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE lake._maintain_function_sql(p_source, true);
END $$;

-- Row-level guard of the apply worker: a replicated update, delete or truncate of a landing table would
-- change raw events behind the state (publish inserts only); it stops the subscription, loudly.
CREATE OR REPLACE FUNCTION lake._refuse_replicated_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'landing table %.% is append-only: publish inserts only (WITH (publish = ''insert''))',
        TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'object_not_in_prerequisite_state';
END $$;

-- The replica triggers of a source, each created only where missing (creating one locks the landing
-- table until the transaction ends), all enabled REPLICA: they fire in the apply worker only.
--   lake_replica_<source>                    row maintenance of every applied insert
--   lake_replica_append_only_<source>        a replicated update or delete stops the subscription
--   lake_replica_no_truncate_<source>        so does a replicated truncate (statement level: the apply
--                                            worker fires statement triggers of TRUNCATE)
CREATE OR REPLACE FUNCTION lake._ensure_replica_triggers(p_source text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s lake.sources := lake._events_source(p_source);
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('lake_replica_' || p_source,
         format('AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION lake_gen.%I()', s.table_name, p_source || '_maintain_row'),
         'keeps the features of source ' || p_source || ' for rows a subscription applies (fires only in the apply worker)'),
        ('lake_replica_append_only_' || p_source,
         format('BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION lake._refuse_replicated_change()', s.table_name),
         'a replicated update or delete of a landing table stops the subscription: landing tables are append-only'),
        ('lake_replica_no_truncate_' || p_source,
         format('BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION lake._refuse_replicated_change()', s.table_name),
         'a replicated truncate of a landing table stops the subscription: landing tables are append-only')
    ) AS x(name, definition, note)
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_trigger WHERE tgrelid = s.table_name AND tgname = t.name);
        EXECUTE format('CREATE TRIGGER %I %s', t.name, t.definition);
        EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER %I', s.table_name, t.name);
        EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', t.name, s.table_name, t.note);
    END LOOP;
END $$;
COMMENT ON FUNCTION lake._ensure_replica_triggers(text) IS 'creates the missing replica triggers of a source (maintenance, append-only guards), enabled REPLICA';

-- Declares that a subscription feeds a source's landing table: the replica row maintenance and the
-- guards against replicated updates, deletes and truncates.
CREATE OR REPLACE FUNCTION lake.enable_replica_maintenance(p_source text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lake._events_source(p_source);
    INSERT INTO lake.replica_sources (source) VALUES (p_source) ON CONFLICT DO NOTHING;
    PERFORM lake._generate_replica_row_function(p_source);
    PERFORM lake._ensure_replica_triggers(p_source);
END $$;
COMMENT ON FUNCTION lake.enable_replica_maintenance(text) IS 'a subscription feeds this source: row-level maintenance and append-only guards that fire in the apply worker';

-- A source whose state changed shape (new features, a new tile threshold) regenerates its replica
-- function; the triggers keep their names, so the landing table is not locked for it.
CREATE OR REPLACE FUNCTION lake._refresh_replica_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM lake.replica_sources WHERE source = NEW.name) THEN
        PERFORM lake._generate_replica_row_function(NEW.name);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER sources_refresh_replica_row
    AFTER UPDATE OF state_aggs, tracked_columns, distinct_columns, grains, tile_threshold ON lake.sources
    FOR EACH ROW EXECUTE FUNCTION lake._refresh_replica_row();

-- Subscriptions into the lake: how far behind the publisher each one is. A subscription that is
-- disabled, or whose apply worker is not running (it stopped on an error: a refused update, delete or
-- truncate), says so in state: its lag columns are then NULL, unknown and growing, for a monitor to
-- alert on.
CREATE OR REPLACE VIEW lake.subscription_lag AS
SELECT s.subname AS subscription, st.received_lsn, st.latest_end_lsn,
       extract(epoch FROM st.last_msg_receipt_time - st.last_msg_send_time) AS transport_seconds,
       extract(epoch FROM now() - st.latest_end_time) AS since_last_confirmed_seconds,
       st.last_msg_receipt_time,
       CASE WHEN NOT s.subenabled THEN 'disabled'
            WHEN st.pid IS NULL THEN 'not running'
            ELSE 'streaming' END AS state
  FROM pg_subscription s
  -- A worker's figures count only while it streams for an enabled subscription (one just disabled
  -- may not have exited yet).
  LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL AND st.pid IS NOT NULL AND s.subenabled
 WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database());
COMMENT ON VIEW lake.subscription_lag IS
    'per subscription: state (streaming, disabled, not running), message transport time and time since the last position the publisher confirmed (NULL when not streaming: unknown and growing)';
