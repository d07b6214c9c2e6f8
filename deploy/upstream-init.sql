-- The upstream operational database of the example: card authorizations of a payments system.
-- Captured for the lake by Debezium (logical decoding, pgoutput) through a publication; REPLICA
-- IDENTITY FULL makes updates and deletes carry the whole old row.
CREATE SCHEMA payments;
CREATE TABLE payments.authorizations (
    id          text PRIMARY KEY,
    card_id     text NOT NULL,
    merchant_id text NOT NULL,
    amount      numeric(14, 2) NOT NULL,
    currency    char(3) NOT NULL,
    country     char(2) NOT NULL,
    channel     text NOT NULL,
    device_id   text,
    created_at  timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
ALTER TABLE payments.authorizations REPLICA IDENTITY FULL;
CREATE PUBLICATION contextlake FOR TABLE payments.authorizations;
