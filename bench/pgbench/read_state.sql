\set card random(1, 100000)
-- Reference, not the product: the quiet-card read from one state row per card holding its recent events (bench/read_bounds.sql).
SELECT * FROM bench.read_state('card-' || lpad(:card::text, 6, '0'), now(), '{"amount": 25, "country": "FR"}');
