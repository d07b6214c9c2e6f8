\set card random(1, 100000)
SELECT * FROM api.read_fraud_v1('card-' || lpad(:card::text, 6, '0'), now(), '{"amount": 25, "country": "FR"}');
