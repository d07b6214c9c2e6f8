-- contextlake engine: the database roles and every grant, installed after the rest of sql/ (and
-- before the catalog's objects are generated again).
--   contextlake_service: what the HTTP service connects as. It may call and read the contract (schema
--     api) and nothing else: no table of the lake or of a landing schema, no temporary tables, no DDL.
--     It lands events, locks entities and logs decisions through api functions that run as the owner.
--   contextlake_analyst: read-only psql access to the contract's views and reads (never key hashes,
--     never the service's writes); every session is read only.
-- The role that runs `contextlake migrate` owns the engine (and runs the definition API); roles are
-- server-wide, so they are created once and reused by every lake database on the server. Neither has a
-- password: set one (ALTER ROLE ... PASSWORD) where the server does not trust local logins.

-- ===========================================================================
-- Roles
-- ===========================================================================
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

-- ===========================================================================
-- The private schemas: the owner's alone
-- ===========================================================================
REVOKE ALL ON SCHEMA lake, lake_gen FROM PUBLIC, contextlake_service, contextlake_analyst;
REVOKE ALL ON ALL TABLES IN SCHEMA lake, lake_gen FROM PUBLIC, contextlake_service, contextlake_analyst;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA lake, lake_gen FROM PUBLIC, contextlake_service, contextlake_analyst;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA lake FROM PUBLIC, contextlake_service, contextlake_analyst;
-- Release 0.1.0 let both roles read every table the owner created later; nothing does now.
ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM contextlake_service, contextlake_analyst;
ALTER DEFAULT PRIVILEGES REVOKE USAGE ON SCHEMAS FROM contextlake_service, contextlake_analyst;

-- Connect, and no temporary tables for anyone the owner has not granted them (PUBLIC has TEMPORARY by
-- default, and the service role is a member of PUBLIC like every role); no objects of anyone's in the
-- public schema (PostgreSQL 14 and databases upgraded from it let PUBLIC create there).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO contextlake_service, contextlake_analyst', current_database());
    IF to_regnamespace('public') IS NOT NULL THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    END IF;
END $$;

-- ===========================================================================
-- The contract (schema api)
-- ===========================================================================
REVOKE ALL ON SCHEMA api FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO contextlake_service, contextlake_analyst;
-- Every view and function of the contract the engine installed (lake.engine_objects) starts from no
-- privilege at all; the generated reads are below, and objects a project adds to api keep their grants.
DO $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT kind, identity FROM lake.engine_objects WHERE identity LIKE 'api.%' LOOP
        EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC, contextlake_service, contextlake_analyst',
                       CASE o.kind WHEN 'view' THEN 'TABLE' ELSE 'FUNCTION' END, o.identity);
    END LOOP;
END $$;

-- Both: the catalog, the registry, freshness and lag, and reading vectors.
GRANT SELECT ON api.sources, api.features, api.feature_sets, api.rules, api.labels, api.models, api.cdc_mappings,
                api.settings, api.feature_freshness, api.ingest_lag, api.cdc_lag, api.subscription_lag,
                api.cdc_dead_letters_open
   TO contextlake_service, contextlake_analyst;
GRANT EXECUTE ON FUNCTION api.feature_freshness_now(), api.ingest_lag_now(), api.ingest_lag_over(interval),
                          api.cdc_lag_now(), api.subscription_lag_now(), api.cdc_dead_letters_open_now(),
                          api.read_vector(text, text, timestamptz, jsonb, int)
   TO contextlake_service, contextlake_analyst;

-- The analyst: the decision log.
GRANT SELECT ON api.decisions TO contextlake_analyst;

-- The service: its key check and its writes, each through a function that runs as the owner.
GRANT EXECUTE ON FUNCTION api.api_key(text), api.land_events(text, jsonb), api.apply_changes(jsonb),
                          api.dead_letter_changes(jsonb), api.lock_entity(text, text, jsonb, text),
                          api.land_event(text, text, jsonb),
                          api.log_decisions(jsonb)
   TO contextlake_service;

-- The generated read functions (api.read_<set>_v<n>): those generated already, and through default
-- privileges every one the owner generates later (a feature set defined in a project migration). They
-- keep PostgreSQL's default EXECUTE for PUBLIC: only roles with USAGE on api (these two) can reach them.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT read_function FROM lake.feature_sets
              WHERE read_function IS NOT NULL AND (SELECT pronamespace FROM pg_proc WHERE oid = read_function) = 'api'::regnamespace
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO contextlake_service, contextlake_analyst', f);
    END LOOP;
END $$;
ALTER DEFAULT PRIVILEGES IN SCHEMA api GRANT EXECUTE ON FUNCTIONS TO contextlake_service, contextlake_analyst;

-- ===========================================================================
-- Checked: a REVOKE by a role that does not own the object changes nothing, silently
-- ===========================================================================
DO $$
DECLARE
    r name;
BEGIN
    FOREACH r IN ARRAY ARRAY['contextlake_service', 'contextlake_analyst']::name[] LOOP
        IF has_database_privilege(r, current_database(), 'TEMPORARY') THEN
            RAISE EXCEPTION 'role % can still create temporary tables in database %', r, current_database()
                USING HINT = 'run contextlake migrate as the database''s owner, or revoke TEMPORARY from PUBLIC as it',
                      ERRCODE = 'insufficient_privilege';
        END IF;
        IF to_regnamespace('public') IS NOT NULL AND has_schema_privilege(r, 'public', 'CREATE') THEN
            RAISE EXCEPTION 'role % can still create objects in schema public', r
                USING HINT = 'run contextlake migrate as the owner of schema public, or revoke CREATE on it from PUBLIC as it',
                      ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END $$;
