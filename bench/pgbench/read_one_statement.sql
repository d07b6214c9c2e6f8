\set card random(1, 100000)
-- Reference, not the product: the quiet-card read of the fraud set written by hand as one SQL statement
-- returning typed columns (no jsonb), to show how much of the read is the data access itself.
SELECT f.* FROM (
SELECT c.k, c.as_of, c.request, coalesce(l.n, 0) AS card_txn_count, coalesce(l.sum__amount, 0) AS card_amount_sum, l.sum__amount / nullif(l.cnt__amount, 0) AS card_amount_avg,
       l.min__amount AS card_amount_min, l.max__amount AS card_amount_max, l.last__country AS card_last_country, l.last__merchant_id AS card_last_merchant, l.first_t AS card_first_seen, l.max__event_time AS card_last_seen,
       coalesce(cb.n, 0) AS card_chargeback_count,
       coalesce(w.c60, 0) AS card_txn_count_60s, coalesce(w.s60, 0) AS card_amount_sum_60s, coalesce(w.d5m, 0) AS card_merchants_5m, coalesce(w.c1h, 0) AS card_txn_count_1h, coalesce(w.s24h, 0) AS card_amount_sum_24h, w.m24h AS card_amount_max_24h, w.a30d AS card_amount_avg_30d,
       p.credit_tier AS card_credit_tier, coalesce(p.credit_limit, 500) AS card_credit_limit, coalesce(p.tenure_days, 0) AS card_tenure_days,
       extract(epoch FROM c.as_of - l.last_t) AS age_1, extract(epoch FROM c.as_of - cb.last_t) AS age_2, extract(epoch FROM c.as_of - p.loaded_at) AS age_3
FROM (SELECT 'card-' || lpad(:card::text, 6, '0') AS k, now() AS as_of, '{"amount": 25, "country": "FR"}'::jsonb AS request) c
LEFT JOIN lake_gen.card_txn_tiles l ON l.entity = c.k AND l.grain = 0 AND l.tile_start = '-infinity'
LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE e.event_time > c.as_of - interval '60 seconds') AS c60, sum(e.amount) FILTER (WHERE e.event_time > c.as_of - interval '60 seconds') AS s60,
     count(DISTINCT e.merchant_id) FILTER (WHERE e.event_time > c.as_of - interval '5 minutes') AS d5m, count(*) FILTER (WHERE e.event_time > c.as_of - interval '1 hour') AS c1h,
     sum(e.amount) FILTER (WHERE e.event_time > c.as_of - interval '24 hours') AS s24h, max(e.amount) FILTER (WHERE e.event_time > c.as_of - interval '24 hours') AS m24h, avg(e.amount) AS a30d
     FROM cards.transactions e WHERE e.card_id = c.k AND e.event_time > c.as_of - interval '30 days' AND e.event_time <= c.as_of) w ON true
LEFT JOIN lake_gen.card_chargeback_tiles cb ON cb.entity = c.k AND cb.grain = 0 AND cb.tile_start = '-infinity'
LEFT JOIN LATERAL (SELECT * FROM cards.profiles p WHERE p.card_id = c.k AND p.loaded_at <= c.as_of ORDER BY loaded_at DESC LIMIT 1) p ON true
) f;
