-- Installs batch landing for clients (REST events, bulk loads, change data capture).
\ir ../../sql/09_ingest.sql
REVOKE EXECUTE ON FUNCTION lake.land_events(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lake.land_events(text, jsonb) TO contextlake_service;
