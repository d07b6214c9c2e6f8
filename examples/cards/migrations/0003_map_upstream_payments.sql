-- replaces: 0006_install_change_capture
-- The upstream payments database of docker-compose.yml: its authorizations table, as Debezium
-- captures it, lands in the card_txn source.
SELECT lake.define_cdc_mapping(
    'payments.authorizations', 'card_txn',
    '{"id": "event_id", "card_id": "card_id", "merchant_id": "merchant_id", "amount": "amount",
      "currency": "currency", "country": "country", "channel": "channel", "device_id": "device_id",
      "created_at": "event_time"}',
    '{"amount": "decimal:2", "created_at": "micro_timestamp"}');
