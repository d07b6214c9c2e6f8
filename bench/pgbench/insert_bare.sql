\set card random(1, 100000)
\set merchant random(1, 5000)
INSERT INTO bench.bare_transactions (event_id, card_id, merchant_id, amount, currency, country, channel, event_time)
VALUES (gen_random_uuid()::text, 'card-' || lpad(:card::text, 6, '0'), 'm' || :merchant, random() * 200, 'EUR', 'FR', 'ecom', now());
