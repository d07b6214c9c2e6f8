-- Installs change data capture (Debezium over HTTP): mappings of upstream tables, the ledger of
-- applied changes, and the example mapping of the upstream payments database (docker-compose.yml).
\ir ../../sql/10_cdc.sql
REVOKE EXECUTE ON FUNCTION lake.apply_changes(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lake.apply_changes(jsonb) TO contextlake_service;
REVOKE EXECUTE ON FUNCTION lake.define_cdc_mapping(text, text, jsonb, jsonb, text) FROM PUBLIC;

SELECT lake.define_cdc_mapping(
    'payments.authorizations', 'card_txn',
    '{"id": "event_id", "card_id": "card_id", "merchant_id": "merchant_id", "amount": "amount",
      "currency": "currency", "country": "country", "channel": "channel", "device_id": "device_id",
      "created_at": "event_time"}',
    '{"amount": "decimal:2", "created_at": "micro_timestamp"}');
