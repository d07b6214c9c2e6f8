-- replaces: 0002_create_card_landing
-- Example domain: card payments. Landing tables for transactions and for
-- chargebacks (the labels, arriving days after the transaction), and a batch
-- table an offline job loads card profiles into.
CREATE SCHEMA cards;
COMMENT ON SCHEMA cards IS 'example domain: card payments (landing tables and batch features)';

CREATE TABLE cards.transactions (
    event_id    text PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 128),
    card_id     text NOT NULL CHECK (length(card_id) BETWEEN 1 AND 64),
    merchant_id text NOT NULL,
    amount      numeric(14, 2) NOT NULL CHECK (amount >= 0 AND amount < 1e12),
    currency    char(3) NOT NULL,
    country     char(2) NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('pos', 'ecom', 'atm', 'moto')),
    device_id   text,
    event_time  timestamptz NOT NULL,
    landed_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cards.transactions IS 'landing table: one row per card authorization, with the source''s own event time';

CREATE TABLE cards.chargebacks (
    chargeback_id text PRIMARY KEY,
    event_id      text NOT NULL,
    card_id       text NOT NULL,
    reason_code   text NOT NULL,
    amount        numeric(14, 2) NOT NULL CHECK (amount >= 0),
    reported_at   timestamptz NOT NULL,
    landed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chargebacks_event_id ON cards.chargebacks (event_id);
COMMENT ON TABLE cards.chargebacks IS 'landing table for labels: a chargeback names the transaction it disputes and arrives days later';

CREATE TABLE cards.profiles (
    card_id      text NOT NULL,
    loaded_at    timestamptz NOT NULL,
    credit_tier  int NOT NULL CHECK (credit_tier BETWEEN 1 AND 5),
    credit_limit numeric(14, 2) NOT NULL,
    tenure_days  int NOT NULL,
    PRIMARY KEY (card_id, loaded_at)
);
COMMENT ON TABLE cards.profiles IS 'batch features: card profiles an offline job loads (COPY), one row per card per load';

SELECT lake.define_source('card_txn', 'cards.transactions', 'card', 'card_id', 'event_time', 'event_id');
SELECT lake.define_source('card_chargeback', 'cards.chargebacks', 'card', 'card_id', 'reported_at', 'chargeback_id');
SELECT lake.define_batch_source('card_profile', 'cards.profiles', 'card', 'card_id', 'loaded_at');
