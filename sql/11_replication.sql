-- contextlake engine, part 11: native logical replication into the lake (the container-free CDC path).
-- The subscription's apply worker runs with session_replication_role = replica: it fires row triggers
-- enabled REPLICA or ALWAYS, never statement triggers, so the statement-level maintenance does not run
-- for replicated rows. A source fed by a subscription gets a row-level twin of its maintenance,
-- enabled REPLICA: it fires in the apply worker only, and local inserts keep the statement trigger.

CREATE TABLE lake.replica_sources (
    source     text PRIMARY KEY REFERENCES lake.sources (name),
    enabled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lake.replica_sources IS 'events sources whose landing table a subscription feeds (row-level replica maintenance)';

-- (Re)creates the row-level replica maintenance of a source from its statement-level maintenance: the
-- same single-event upsert and tile fold, reading the row from NEW instead of the transition table.
CREATE FUNCTION lake._generate_replica_row(p_source text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    body text := lake._maintain_function_sql(p_source);
    trig text := 'lake_replica_' || p_source;
BEGIN
    SELECT * INTO STRICT s FROM lake.sources WHERE name = p_source;
    body := replace(body, format('lake_gen.%I()', p_source || '_maintain'), format('lake_gen.%I()', p_source || '_maintain_row'));
    body := replace(body, 'SELECT count(*) INTO rows FROM (SELECT FROM new_rows LIMIT 2) AS x;', 'rows := 1;');
    body := replace(body, 'FROM new_rows AS e', 'FROM (SELECT (NEW).*) AS e');
    IF position('new_rows' IN substr(body, 1, position('ELSIF rows > 1' IN body))) > 0 THEN
        RAISE EXCEPTION 'replica maintenance of %: the generated maintenance changed shape', p_source;
    END IF;
    -- The batch branch is never taken for one row; it is cut so nothing refers to the transition table.
    body := regexp_replace(body, 'ELSIF rows > 1 THEN .* END IF; RETURN NULL; END \$f\$',
                           'END IF; RETURN NULL; END $f$');
    EXECUTE body;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trig, s.table_name);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION lake_gen.%I()',
                   trig, s.table_name, p_source || '_maintain_row');
    EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER %I', s.table_name, trig);
    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', trig, s.table_name,
                   'keeps the features of source ' || p_source || ' for rows a subscription applies (fires only in the apply worker)');
END $$;

-- Declares that a subscription feeds a source's landing table (publish inserts only: the landing
-- table is append-only, and the apply worker does not fire its append-only guard).
CREATE FUNCTION lake.enable_replica_maintenance(p_source text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM lake.sources WHERE name = p_source AND kind = 'events') THEN
        RAISE EXCEPTION 'unknown events source %', p_source USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO lake.replica_sources (source) VALUES (p_source) ON CONFLICT DO NOTHING;
    PERFORM lake._generate_replica_row(p_source);
END $$;

-- A source regenerated (new features, a new tile threshold) regenerates its replica maintenance too.
CREATE FUNCTION lake._refresh_replica_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM lake.replica_sources WHERE source = NEW.name) THEN
        PERFORM lake._generate_replica_row(NEW.name);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sources_refresh_replica_row AFTER UPDATE ON lake.sources
    FOR EACH ROW EXECUTE FUNCTION lake._refresh_replica_row();

-- Subscriptions into the lake: how far behind the publisher each one is.
CREATE VIEW lake.subscription_lag AS
SELECT subname AS subscription, received_lsn, latest_end_lsn,
       extract(epoch FROM last_msg_receipt_time - last_msg_send_time) AS transport_seconds,
       extract(epoch FROM now() - latest_end_time) AS since_last_confirmed_seconds,
       last_msg_receipt_time
  FROM pg_stat_subscription
 WHERE relid IS NULL;
COMMENT ON VIEW lake.subscription_lag IS
    'per subscription (pg_stat_subscription): message transport time and time since the last position the publisher confirmed';
