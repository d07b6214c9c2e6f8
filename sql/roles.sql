-- contextlake engine: database roles and every grant (installed after the rest of sql/, and again
-- after a project's migrations).
--   contextlake_service: what the scoring service connects as. It reads every table, writes
--     decisions, and lands events only through lake.land_event; it owns nothing and cannot run DDL.
--   contextlake_analyst: read-only psql access (every session is read only), API key hashes excepted.
-- Roles belong to the whole server, so they are created once and reused by every lake database on it.
-- Neither has a password: set one (ALTER ROLE ... PASSWORD) where the server does not trust local logins.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'contextlake_service') THEN
        CREATE ROLE contextlake_service LOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'contextlake_analyst') THEN
        CREATE ROLE contextlake_analyst LOGIN NOINHERIT;
    END IF;
END $$;
ALTER ROLE contextlake_analyst SET default_transaction_read_only = on;

-- Grants both roles read access to the lake, its generated state and every landing schema, the
-- service its writes; run again by a migration that adds a landing schema or table.
CREATE OR REPLACE FUNCTION lake.grant_serving_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_schema name;
BEGIN
    FOR v_schema IN
        SELECT 'lake'::name UNION SELECT 'lake_gen'::name
        UNION SELECT n.nspname FROM lake.sources s JOIN pg_class c ON c.oid = s.table_name
                                JOIN pg_namespace n ON n.oid = c.relnamespace
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO contextlake_service, contextlake_analyst', v_schema);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO contextlake_service, contextlake_analyst', v_schema);
    END LOOP;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO contextlake_service, contextlake_analyst', current_database());
    REVOKE SELECT ON lake.api_keys FROM contextlake_analyst;
    GRANT INSERT ON lake.decisions TO contextlake_service;
    -- Definition, registry, key and maintenance functions stay with the owner.
    REVOKE EXECUTE ON FUNCTION lake.register_model(text, int, bytea, text, int, text[], double precision,
                                                   double precision, text) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION lake.set_model_status(text, int, text) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION lake.create_api_key(text, text[]) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION lake.revoke_api_key(text) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION lake.import_api_key(text, text[], text) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION lake.land_event(text, text, jsonb) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION lake.land_event(text, text, jsonb) TO contextlake_service;
    REVOKE EXECUTE ON FUNCTION lake.land_events(text, jsonb) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION lake.land_events(text, jsonb) TO contextlake_service;
    REVOKE EXECUTE ON FUNCTION lake.apply_changes(jsonb) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION lake.apply_changes(jsonb) TO contextlake_service;
    REVOKE EXECUTE ON FUNCTION lake.define_cdc_mapping(text, text, jsonb, jsonb, text) FROM PUBLIC;
END $$;
COMMENT ON FUNCTION lake.grant_serving_roles IS
    'grants the service and analyst roles what they need on the lake and every landing schema; idempotent';

SELECT lake.grant_serving_roles();
-- Tables the migrating role creates later (new state tables, new landing tables) are readable by both.
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO contextlake_service, contextlake_analyst;
ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO contextlake_service, contextlake_analyst;
