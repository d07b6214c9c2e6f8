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

-- Declares that a subscription feeds a source's landing table: the replica row maintenance and guard,
-- both enabled REPLICA (they fire in the apply worker only).
CREATE OR REPLACE FUNCTION lake.enable_replica_maintenance(p_source text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    trig text := 'lake_replica_' || p_source;
    guard text := 'lake_replica_append_only_' || p_source;
BEGIN
    s := lake._events_source(p_source);
    INSERT INTO lake.replica_sources (source) VALUES (p_source) ON CONFLICT DO NOTHING;
    PERFORM lake._generate_replica_row_function(p_source);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trig, s.table_name);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION lake_gen.%I()',
                   trig, s.table_name, p_source || '_maintain_row');
    EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER %I', s.table_name, trig);
    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', trig, s.table_name,
                   'keeps the features of source ' || p_source || ' for rows a subscription applies (fires only in the apply worker)');
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', guard, s.table_name);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION lake._refuse_replicated_change()',
                   guard, s.table_name);
    EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER %I', s.table_name, guard);
END $$;

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

-- Subscriptions into the lake: how far behind the publisher each one is.
CREATE OR REPLACE VIEW lake.subscription_lag AS
SELECT subname AS subscription, received_lsn, latest_end_lsn,
       extract(epoch FROM last_msg_receipt_time - last_msg_send_time) AS transport_seconds,
       extract(epoch FROM now() - latest_end_time) AS since_last_confirmed_seconds,
       last_msg_receipt_time
  FROM pg_stat_subscription
 WHERE relid IS NULL;
COMMENT ON VIEW lake.subscription_lag IS
    'per subscription (pg_stat_subscription): message transport time and time since the last position the publisher confirmed';
