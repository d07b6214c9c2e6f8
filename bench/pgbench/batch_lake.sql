\set base random(1, 100000)
INSERT INTO cards.transactions (event_id, card_id, merchant_id, amount, currency, country, channel, event_time)
SELECT gen_random_uuid()::text, 'card-' || lpad(((:base + i * 7919) % 100000 + 1)::text, 6, '0'), 'm' || (i % 5000),
       random() * 200, 'EUR', 'FR', 'ecom', now() - make_interval(secs => random() * 60)
  FROM generate_series(1, 1000) AS i;
