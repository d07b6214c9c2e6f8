-- Service benchmark data: 300,000 card transactions over the last 30 days for 100,000 cards
-- (quiet cards: windows read from raw events), landed through the lake.
INSERT INTO cards.transactions (event_id, card_id, merchant_id, amount, currency, country, channel, event_time)
SELECT 's' || i, 'card-' || lpad((i % 100000 + 1)::text, 6, '0'), 'm' || (i * 31 % 5000),
       round((random() * 200)::numeric, 2), 'EUR', 'FR', 'pos', now() - make_interval(secs => random() * 30 * 86400)
  FROM generate_series(1, 300000) AS i;
