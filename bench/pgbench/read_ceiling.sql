\set card random(1, 100000)
-- Reference, not the product: the same read with no window computed (bench/read_bounds.sql).
SELECT * FROM bench.read_ceiling('card-' || lpad(:card::text, 6, '0'), now(), '{"amount": 25, "country": "FR"}');
