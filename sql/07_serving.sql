-- contextlake engine, part 7: what the scoring service keeps in the lake.
-- The model registry, the decision log, API keys, the per-entity lock of
-- decide-and-commit, and the one landing function the service writes through.

-- ===========================================================================
-- Model registry
-- ===========================================================================

-- Types a model input can take from a vector column (passed as float32; NULL as NaN).
CREATE OR REPLACE FUNCTION lake._is_model_input_type(p_type regtype) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype,
                      'real'::regtype, 'double precision'::regtype, 'boolean'::regtype)
$$;

-- The features of a feature set a model can consume (numeric or boolean), in the set's order, with their types.
CREATE OR REPLACE FUNCTION lake.model_inputs(p_feature_set text, p_version int)
RETURNS TABLE (feature text, type text, usable boolean)
LANGUAGE sql STABLE AS $$
    SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), lake._is_model_input_type(a.atttypid)
      FROM lake.feature_sets fs
      JOIN pg_proc p ON p.oid = fs.read_function
      JOIN pg_type t ON t.oid = p.prorettype
      JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE fs.name = p_feature_set AND fs.version = p_version
       AND a.attname::text = ANY (fs.features)
     ORDER BY array_position(fs.features, a.attname::text)
$$;

-- Registers a model version after checking it against its feature set; a new active (or shadow)
-- version retires the previous active (or shadow) one of that name.
CREATE OR REPLACE FUNCTION lake.register_model(
    p_name text, p_version int, p_onnx bytea, p_feature_set text, p_feature_set_version int,
    p_features text[] DEFAULT NULL, p_review_at double precision DEFAULT 0.5,
    p_decline_at double precision DEFAULT 0.9, p_status text DEFAULT 'shadow')
RETURNS lake.models
LANGUAGE plpgsql AS $$
DECLARE
    v_inputs text[];
    v_bad text;
    v_row lake.models;
BEGIN
    IF NOT EXISTS (SELECT FROM lake.feature_sets WHERE name = p_feature_set AND version = p_feature_set_version) THEN
        RAISE EXCEPTION 'unknown feature set %, version %', p_feature_set, p_feature_set_version
            USING ERRCODE = 'undefined_object',
                  HINT = (SELECT 'defined: ' || string_agg(name || ' v' || version, ', ' ORDER BY name, version)
                            FROM lake.feature_sets);
    END IF;
    SELECT array_agg(feature ORDER BY ordinality) INTO v_inputs
      FROM lake.model_inputs(p_feature_set, p_feature_set_version) WITH ORDINALITY WHERE usable;
    IF p_features IS NULL THEN
        p_features := v_inputs;
    END IF;
    IF cardinality(p_features) IS NULL OR cardinality(p_features) = 0 THEN
        RAISE EXCEPTION 'model %: no input features', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(f, ', ') INTO v_bad
      FROM unnest(p_features) AS f
     WHERE NOT EXISTS (SELECT FROM lake.model_inputs(p_feature_set, p_feature_set_version) i WHERE i.feature = f);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'model %: % not in feature set % v%', p_name, v_bad, p_feature_set, p_feature_set_version
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the set has: ' || (SELECT string_agg(feature, ', ')
                                               FROM lake.model_inputs(p_feature_set, p_feature_set_version));
    END IF;
    SELECT string_agg(i.feature || ' (' || i.type || ')', ', ') INTO v_bad
      FROM lake.model_inputs(p_feature_set, p_feature_set_version) i
     WHERE i.feature = ANY (p_features) AND NOT i.usable;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'model %: input features must be numeric or boolean; % cannot be an input', p_name, v_bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT f) FROM unnest(p_features) f) <> cardinality(p_features) THEN
        RAISE EXCEPTION 'model %: a feature is listed twice in %', p_name, p_features
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM lake.models WHERE name = p_name AND version = p_version) THEN
        RAISE EXCEPTION 'model % version % is already registered', p_name, p_version
            USING ERRCODE = 'unique_violation',
                  HINT = format('register it as version %s', (SELECT max(version) + 1 FROM lake.models WHERE name = p_name));
    END IF;
    INSERT INTO lake.models (name, version, onnx, sha256, feature_set, feature_set_version, features,
                             review_at, decline_at, status)
    VALUES (p_name, p_version, p_onnx, encode(sha256(p_onnx), 'hex'), p_feature_set, p_feature_set_version,
            p_features, p_review_at, p_decline_at, 'retired')
    RETURNING * INTO v_row;
    IF p_status <> 'retired' THEN  -- its status as any version gets it (the previous holder is retired)
        v_row := lake.set_model_status(p_name, p_version, p_status);
    END IF;
    RETURN v_row;
END $$;
COMMENT ON FUNCTION lake.register_model IS
    'registers a model version after checking its input features against the feature set (the ONNX input width is checked by the registering client)';

-- Sets a model version's status; activating (or shadowing) retires the version that held that status.
CREATE OR REPLACE FUNCTION lake.set_model_status(p_name text, p_version int, p_status text)
RETURNS lake.models
LANGUAGE plpgsql AS $$
DECLARE
    v_row lake.models;
BEGIN
    IF p_status NOT IN ('active', 'shadow', 'retired') THEN
        RAISE EXCEPTION 'model status must be active, shadow or retired, not %', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM FROM lake.models WHERE name = p_name AND version = p_version FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown model % version %', p_name, p_version USING ERRCODE = 'undefined_object';
    END IF;
    IF p_status <> 'retired' THEN
        UPDATE lake.models SET status = 'retired', status_changed_at = now()
         WHERE name = p_name AND status = p_status AND version <> p_version;
    END IF;
    UPDATE lake.models SET status = p_status, status_changed_at = now()
     WHERE name = p_name AND version = p_version AND status <> p_status;
    SELECT * INTO v_row FROM lake.models WHERE name = p_name AND version = p_version;
    RETURN v_row;
END $$;
COMMENT ON FUNCTION lake.set_model_status IS 'activates, shadows or retires a model version; the service swaps on the notification';

-- Tells listening services which model name changed (they reload it and swap without dropping a request).
CREATE OR REPLACE FUNCTION lake._notify_models() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lake_models', coalesce(NEW.name, OLD.name));
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER models_notify AFTER INSERT OR UPDATE OR DELETE ON lake.models
    FOR EACH ROW EXECUTE FUNCTION lake._notify_models();

-- ===========================================================================
-- Decision log
-- ===========================================================================

-- Writes a batch of logged decisions (json objects keyed by column); a decision already logged is skipped,
-- so a batch retried after a lost acknowledgement writes nothing twice.
CREATE OR REPLACE FUNCTION lake.log_decisions(p_rows jsonb) RETURNS int
LANGUAGE sql AS $$
    WITH ins AS (
        INSERT INTO lake.decisions
        SELECT * FROM jsonb_populate_recordset(NULL::lake.decisions, p_rows)
        ON CONFLICT DO NOTHING
        RETURNING 1)
    SELECT count(*)::int FROM ins
$$;

-- ===========================================================================
-- API keys
-- ===========================================================================

-- Creates an API key and returns it once (clk_<key id>_<secret>); only the secret's hash is stored.
CREATE OR REPLACE FUNCTION lake.create_api_key(p_name text, p_scopes text[])
RETURNS TABLE (key_id text, api_key text)
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := substr(replace(gen_random_uuid()::text, '-', ''), 1, 12);
    v_secret text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    v_bad text;
BEGIN
    SELECT string_agg(s, ', ') INTO v_bad FROM unnest(p_scopes) s WHERE s NOT IN ('score', 'ingest', 'admin');
    IF v_bad IS NOT NULL OR coalesce(cardinality(p_scopes), 0) = 0 THEN
        RAISE EXCEPTION 'scopes must be among score, ingest, admin (got %)', coalesce(v_bad, 'none')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO lake.api_keys (key_id, name, secret_sha256, scopes)
    VALUES (v_id, p_name, encode(sha256(convert_to(v_secret, 'UTF8')), 'hex'),
            ARRAY(SELECT DISTINCT s FROM unnest(p_scopes) s ORDER BY 1));
    RETURN QUERY SELECT v_id, 'clk_' || v_id || '_' || v_secret;
END $$;

-- Registers a key made elsewhere (clk_<12 hex>_<64 hex>), e.g. one a deployment hands to Debezium;
-- only its hash is stored.
CREATE OR REPLACE FUNCTION lake.import_api_key(p_name text, p_scopes text[], p_key text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    m text[] := regexp_match(p_key, '^clk_([0-9a-f]{12})_([0-9a-f]{64})$');
BEGIN
    IF m IS NULL THEN
        RAISE EXCEPTION 'an API key is clk_<12 hex key id>_<64 hex secret>' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(p_scopes) s WHERE s NOT IN ('score', 'ingest', 'admin'))
       OR coalesce(cardinality(p_scopes), 0) = 0 THEN
        RAISE EXCEPTION 'scopes must be among score, ingest, admin' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO lake.api_keys (key_id, name, secret_sha256, scopes)
    VALUES (m[1], p_name, encode(sha256(convert_to(m[2], 'UTF8')), 'hex'),
            ARRAY(SELECT DISTINCT s FROM unnest(p_scopes) s ORDER BY 1))
    ON CONFLICT (key_id) DO UPDATE SET name = EXCLUDED.name, secret_sha256 = EXCLUDED.secret_sha256,
                                       scopes = EXCLUDED.scopes, revoked_at = NULL;
    RETURN m[1];
END $$;

-- Revokes an API key (effective at once in every listening service).
CREATE OR REPLACE FUNCTION lake.revoke_api_key(p_key_id text) RETURNS boolean
LANGUAGE sql AS $$
    WITH r AS (UPDATE lake.api_keys SET revoked_at = now() WHERE key_id = p_key_id AND revoked_at IS NULL RETURNING 1)
    SELECT EXISTS (SELECT FROM r)
$$;

CREATE OR REPLACE FUNCTION lake._notify_api_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lake_api_keys', coalesce(NEW.key_id, OLD.key_id));
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON lake.api_keys
    FOR EACH ROW EXECUTE FUNCTION lake._notify_api_keys();

-- ===========================================================================
-- Decide and commit: the per-entity lock and the landing function
-- ===========================================================================

-- The catalog row of an events source, or a clear error listing the ones there are.
CREATE OR REPLACE FUNCTION lake._events_source(p_source text) RETURNS lake.sources
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lake.sources;
BEGIN
    SELECT * INTO s FROM lake.sources WHERE name = p_source AND kind = 'events';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown events source %', p_source USING ERRCODE = 'undefined_object',
            HINT = (SELECT 'events sources: ' || string_agg(name, ', ' ORDER BY name) FROM lake.sources WHERE kind = 'events');
    END IF;
    RETURN s;
END $$;

-- Takes the transaction-level advisory lock of one entity, so decide-and-commit transactions on one
-- entity run one after the other. The lock key is the entity type and the key in its column's own
-- type (so '42' and '042' of a bigint key are one entity); waiting is bounded by p_lock_timeout
-- (error 55P03 past it). Returns the source's entity type, event id and time columns and, when the
-- event carries an id already decided, that logged decision (an idempotent retry).
CREATE OR REPLACE FUNCTION lake.lock_entity(p_source text, p_entity text, p_event jsonb, p_lock_timeout text DEFAULT '1s')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    s lake.sources;
    v_key text;
BEGIN
    s := lake._events_source(p_source);
    EXECUTE format('SELECT ($1::%s)::text', lake._column_base_type(s.table_name, s.entity_column)) INTO v_key USING p_entity;
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    PERFORM pg_advisory_xact_lock(hashtextextended(s.entity || ':' || v_key, 0));
    PERFORM set_config('lock_timeout', '0', true);
    RETURN jsonb_build_object(
        'entity', s.entity,
        'id_column', s.id_column,
        'time_column', s.time_column,
        'decided', (SELECT to_jsonb(d) FROM lake.decisions d
                     WHERE d.source = p_source AND d.event_id = p_event ->> s.id_column::text));
END $$;

-- Lands one event (a json object keyed by landing column) in a source's landing table: the entity
-- and, when absent, the event time (now) and event id (a new uuid) are filled in. Returns the event
-- id, or NULL when an event with that id had already landed (nothing is landed twice). Runs as the
-- lake's owner, so the service role writes events only through it.
CREATE OR REPLACE FUNCTION lake.land_event(p_source text, p_entity text, p_event jsonb)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s lake.sources;
    v_event jsonb;
    v_cols text[];
    v_unknown text;
    v_id text;
BEGIN
    s := lake._events_source(p_source);
    IF jsonb_typeof(p_event) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'an event is a json object keyed by column' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.id_column IS NOT NULL AND p_event ? s.id_column::text
       AND jsonb_typeof(p_event -> s.id_column::text) NOT IN ('string', 'number') THEN
        RAISE EXCEPTION '% (the event id) must be a string or a number, not %', s.id_column,
            jsonb_typeof(p_event -> s.id_column::text) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_event ? s.entity_column::text AND p_event ->> s.entity_column::text IS DISTINCT FROM p_entity THEN
        RAISE EXCEPTION 'event %: % is %, the request is for entity %', p_event ->> s.id_column::text,
            s.entity_column, p_event ->> s.entity_column::text, p_entity USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.landed_column IS NOT NULL AND p_event ? s.landed_column::text THEN
        RAISE EXCEPTION '% is set by the lake when the event lands', s.landed_column
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_event := p_event || jsonb_build_object(s.entity_column::text, p_entity);
    IF NOT v_event ? s.time_column::text THEN
        v_event := v_event || jsonb_build_object(s.time_column::text, now());
    END IF;
    IF s.id_column IS NOT NULL AND NOT v_event ? s.id_column::text THEN
        v_event := v_event || jsonb_build_object(s.id_column::text, gen_random_uuid()::text);
    END IF;
    SELECT string_agg(k, ', ') INTO v_unknown
      FROM jsonb_object_keys(v_event) k
     WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = s.table_name AND a.attnum > 0
                          AND NOT a.attisdropped AND a.attname::text = k);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown column(s) % for source %', v_unknown, p_source
            USING ERRCODE = 'undefined_column',
                  HINT = (SELECT 'columns: ' || string_agg(a.attname::text, ', ' ORDER BY a.attnum)
                            FROM pg_attribute a WHERE a.attrelid = s.table_name AND a.attnum > 0
                             AND NOT a.attisdropped AND a.attname IS DISTINCT FROM s.landed_column);
    END IF;
    SELECT array_agg(quote_ident(k) ORDER BY k) INTO v_cols FROM jsonb_object_keys(v_event) k;
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1) %s RETURNING %s',
                   s.table_name, array_to_string(v_cols, ', '), array_to_string(v_cols, ', '), s.table_name,
                   CASE WHEN s.id_column IS NULL THEN '' ELSE format('ON CONFLICT (%I) DO NOTHING', s.id_column) END,
                   coalesce(quote_ident(s.id_column) || '::text', 'NULL::text'))
       INTO v_id USING v_event;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION lake.land_event IS
    'lands one event of a source as the lake owner (the maintenance trigger keeps its features in the same transaction)';
