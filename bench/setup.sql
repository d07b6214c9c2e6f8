-- Benchmark setup: a bare copy of the landing table (same columns, constraints and indexes, no trigger)
-- and a CSV of 1,000,000 transactions over the last 30 days for 100,000 cards.
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.bare_transactions (LIKE cards.transactions INCLUDING ALL);
CREATE UNLOGGED TABLE bench.copy_source AS
SELECT 'c' || i AS event_id, 'card-' || lpad((i % 100000 + 1)::text, 6, '0') AS card_id, 'm' || (i * 31 % 5000) AS merchant_id,
       round((random() * 200)::numeric, 2) AS amount, 'EUR' AS currency, 'FR' AS country, 'pos' AS channel, NULL AS device_id,
       now() - make_interval(secs => random() * 30 * 86400) AS event_time
  FROM generate_series(1, 1000000) AS i;
-- Busy cards: 1,000 cards with 200 events each in the last day (past the tile threshold, so their
-- windows are read from tiles plus raw edges), landed through the lake after the COPY comparison.
CREATE UNLOGGED TABLE bench.busy_source AS
SELECT 'busy-' || c || '-' || k AS event_id, 'busy-' || lpad(c::text, 4, '0') AS card_id, 'm' || (k * 7 % 300) AS merchant_id,
       round((random() * 200)::numeric, 2) AS amount, 'EUR' AS currency, 'FR' AS country, 'ecom' AS channel, NULL AS device_id,
       now() - make_interval(secs => random() * 86400) AS event_time
  FROM generate_series(1, 1000) AS c, generate_series(1, 200) AS k;
