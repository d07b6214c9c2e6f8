-- contextlake engine, part 1: schemas and the catalog.
-- The catalog is what every other part is driven by: the maintenance triggers,
-- the generated read functions, the freshness views, compaction and verify.

-- ===========================================================================
-- Schemas
-- ===========================================================================

-- ===========================================================================
-- Settings
-- ===========================================================================

-- Reads a setting as text; a missing key is a programming error, so it raises.
CREATE OR REPLACE FUNCTION lake.setting(p_key text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT value FROM lake.settings WHERE key = p_key
$$;
COMMENT ON FUNCTION lake.setting(text) IS 'value of one engine knob from lake.settings';

-- ===========================================================================
-- Sources: landing tables (events) and batch tables the features read from
-- ===========================================================================

-- ===========================================================================
-- Features
-- ===========================================================================

-- ===========================================================================
-- Feature sets and rules
-- ===========================================================================

-- ===========================================================================
-- Composite types: the read contract
-- ===========================================================================

-- The earliest event time any source takes (a time before it is a unit mistake, or a placeholder
-- like 0001-01-01, not an event); the latest is the clock plus lake.settings max_event_future.
CREATE OR REPLACE FUNCTION lake.earliest_event_time() RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT timestamptz '1970-01-01 00:00:00+00' $$;
COMMENT ON FUNCTION lake.earliest_event_time() IS 'events before 1970-01-01 UTC are refused by every landing path';
