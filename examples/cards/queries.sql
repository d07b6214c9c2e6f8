-- Named queries of the card example's Python (generator output and demo).

-- name: card_with_most_chargebacks
SELECT card_id FROM cards.chargebacks GROUP BY card_id ORDER BY count(*) DESC, card_id LIMIT 1;

-- name: land_profile
INSERT INTO cards.profiles (card_id, loaded_at, credit_tier, credit_limit, tenure_days)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING;

-- name: transactions_landed
SELECT count(*) FROM cards.transactions;
