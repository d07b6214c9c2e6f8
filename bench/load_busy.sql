-- Lands the busy cards through the lake (one statement: each card passes the tile threshold at once).
INSERT INTO cards.transactions (event_id, card_id, merchant_id, amount, currency, country, channel, device_id, event_time)
SELECT event_id, card_id, merchant_id, amount, currency, country, channel, device_id, event_time
  FROM bench.busy_source ORDER BY event_time;
