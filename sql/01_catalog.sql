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
