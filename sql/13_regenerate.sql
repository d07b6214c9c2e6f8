-- contextlake engine, part 13: regeneration of every generated object from the catalog.
-- After the engine's functions are reinstalled, the objects generated from the catalog by their
-- earlier text (maintenance functions and triggers, lifetime helpers, replica twins, read functions)
-- are generated again by the current text. State tables and their rows are kept.

-- Generates the code of every source, replica source and feature set again; returns what it made.
CREATE OR REPLACE FUNCTION lake.regenerate() RETURNS TABLE (kind text, name text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT s.name FROM lake.sources s WHERE s.kind = 'events' ORDER BY s.name LOOP
        PERFORM lake._generate_source_code(r.name);
        kind := 'source'; name := r.name; RETURN NEXT;
    END LOOP;
    FOR r IN SELECT rs.source FROM lake.replica_sources rs ORDER BY rs.source LOOP
        PERFORM lake._generate_replica_row_function(r.source);
        PERFORM lake._ensure_replica_triggers(r.source);
        kind := 'replica source'; name := r.source; RETURN NEXT;
    END LOOP;
    FOR r IN SELECT fs.name, fs.version FROM lake.feature_sets fs ORDER BY fs.name, fs.version LOOP
        PERFORM lake._generate_feature_set(r.name, r.version);
        kind := 'feature set'; name := r.name || ' v' || r.version; RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION lake.regenerate() IS 'generates every catalog-driven object again from the current engine code, keeping all state; run by contextlake migrate after an engine upgrade';
