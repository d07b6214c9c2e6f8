\set card random(1, 1000)
SELECT * FROM api.read_fraud_v1('busy-' || lpad(:card::text, 4, '0'), now(), '{"amount": 25, "country": "FR"}');
