-- Two reference reads of the quiet-card fraud vector, to bound what any state layout can reach.
-- Not the product: hand-written for the fraud feature set, same result type and values as its
-- generated read function (api.read_fraud_v1) for a read at now().
--
--   bench.read_state:   an alternative layout, one state row per card holding the lifetime aggregates
--                       and the card's events of the longest window (30 days) as arrays, so the five
--                       windows are computed from that row instead of an index range of raw events.
--   bench.read_ceiling: the same read with the windows not computed at all (left NULL): what the rest
--                       of the read costs (three lookups, 23 values, ages, rules, snapshot).
DROP TABLE IF EXISTS bench.card_state;
CREATE TABLE bench.card_state AS
SELECT t.entity, t.n, t.first_t, t.last_t, t.cnt__amount, t.sum__amount, t.min__amount, t.max__amount,
       t.last__country, t.last__merchant_id, t.max__event_time,
       r.ts AS recent_time, r.amount AS recent_amount, r.merchant AS recent_merchant
  FROM lake_gen.card_txn_tiles AS t
  LEFT JOIN LATERAL (
        SELECT array_agg(e.event_time) AS ts, array_agg(e.amount) AS amount, array_agg(e.merchant_id) AS merchant
          FROM cards.transactions AS e
         WHERE e.card_id = t.entity AND e.event_time > now() - interval '30 days') AS r ON true
 WHERE t.grain = 0 AND t.tile_start = '-infinity' AND t.tiled_since IS NULL;
ALTER TABLE bench.card_state ADD PRIMARY KEY (entity);

CREATE TYPE bench.fraud_windows AS (
    count_60s bigint, sum_60s numeric, merchants_5m bigint, count_1h bigint, sum_24h numeric, max_24h numeric, avg_30d numeric);

-- The read of both references; p_windows says whether the windows are computed from the state row.
CREATE FUNCTION bench.read_with(p_entity text, as_of timestamptz, request jsonb, p_windows boolean)
RETURNS SETOF lake_gen.vec_fraud_v1 LANGUAGE sql STABLE ROWS 1 AS $f$
SELECT f.p_entity, f.as_of, pg_current_snapshot()::text,
       f.card_txn_count, f.card_amount_sum, f.card_amount_avg, f.card_amount_min, f.card_amount_max,
       f.card_last_country, f.card_last_merchant, f.card_first_seen, f.card_last_seen, f.card_chargeback_count,
       f.card_txn_count_60s, f.card_amount_sum_60s, f.card_merchants_5m, f.card_txn_count_1h,
       f.card_amount_sum_24h, f.card_amount_max_24h, f.card_amount_avg_30d,
       f.card_credit_tier, f.card_credit_limit, f.card_tenure_days,
       f.amount_to_avg_30d, f.seconds_since_last_txn, f.country_changed,
       ARRAY[f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_2,
             f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_1, f.age_3, f.age_3, f.age_3,
             f.age_1, f.age_1, f.age_1]::double precision[],
       ARRAY[coalesce(f.card_txn_count_60s >= 5 AND f.card_merchants_5m >= 3, false),
             coalesce(f.card_amount_sum_24h + coalesce((f.request->>'amount')::numeric, 0) > f.card_credit_limit, false),
             coalesce(f.country_changed = 1 AND f.seconds_since_last_txn < 3600, false)]::boolean[]
  FROM (SELECT f.*,
               ((f.request->>'amount')::numeric / nullif(f.card_amount_avg_30d, 0))::double precision AS amount_to_avg_30d,
               extract(epoch FROM f.as_of - f.card_last_seen)::double precision AS seconds_since_last_txn,
               (CASE WHEN f.card_last_country IS NULL THEN 0
                     WHEN (f.request->>'country') IS DISTINCT FROM f.card_last_country THEN 1 ELSE 0 END)::double precision
                   AS country_changed
          FROM (SELECT a.p_entity, a.as_of, a.request,
                       coalesce(s.n, 0) AS card_txn_count, coalesce(s.sum__amount, 0) AS card_amount_sum,
                       s.sum__amount / nullif(s.cnt__amount, 0) AS card_amount_avg,
                       s.min__amount AS card_amount_min, s.max__amount AS card_amount_max,
                       s.last__country AS card_last_country, s.last__merchant_id AS card_last_merchant,
                       s.first_t AS card_first_seen, s.max__event_time AS card_last_seen,
                       coalesce(cb.n, 0) AS card_chargeback_count,
                       coalesce((w.w).count_60s, 0) AS card_txn_count_60s, coalesce((w.w).sum_60s, 0) AS card_amount_sum_60s,
                       coalesce((w.w).merchants_5m, 0) AS card_merchants_5m, coalesce((w.w).count_1h, 0) AS card_txn_count_1h,
                       coalesce((w.w).sum_24h, 0) AS card_amount_sum_24h, (w.w).max_24h::numeric(14,2) AS card_amount_max_24h,
                       (w.w).avg_30d AS card_amount_avg_30d,
                       p.credit_tier AS card_credit_tier, coalesce(p.credit_limit, 500) AS card_credit_limit,
                       coalesce(p.tenure_days, 0) AS card_tenure_days,
                       extract(epoch FROM a.as_of - s.last_t)::double precision AS age_1,
                       extract(epoch FROM a.as_of - cb.last_t)::double precision AS age_2,
                       extract(epoch FROM a.as_of - p.loaded_at)::double precision AS age_3
                  FROM (SELECT $1 AS p_entity, $2 AS as_of, $3 AS request) AS a
                  LEFT JOIN bench.card_state AS s ON s.entity = a.p_entity
                  LEFT JOIN LATERAL (
                        SELECT ROW(count(*) FILTER (WHERE x.t > a.as_of - interval '60 seconds'),
                                   sum(x.amount) FILTER (WHERE x.t > a.as_of - interval '60 seconds'),
                                   count(DISTINCT x.merchant) FILTER (WHERE x.t > a.as_of - interval '5 minutes'),
                                   count(*) FILTER (WHERE x.t > a.as_of - interval '1 hour'),
                                   sum(x.amount) FILTER (WHERE x.t > a.as_of - interval '24 hours'),
                                   max(x.amount) FILTER (WHERE x.t > a.as_of - interval '24 hours'),
                                   avg(x.amount) FILTER (WHERE x.t > a.as_of - interval '30 days'))::bench.fraud_windows AS w
                          FROM unnest(s.recent_time, s.recent_amount, s.recent_merchant) AS x(t, amount, merchant)
                         WHERE x.t <= a.as_of AND $4) AS w ON $4
                  LEFT JOIN lake_gen.card_chargeback_tiles AS cb
                         ON cb.entity = a.p_entity AND cb.grain = 0 AND cb.tile_start = '-infinity'
                  LEFT JOIN LATERAL (
                        SELECT * FROM cards.profiles AS b WHERE b.card_id = a.p_entity AND b.loaded_at <= a.as_of
                         ORDER BY b.loaded_at DESC LIMIT 1) AS p ON true) AS f) AS f
$f$;
CREATE FUNCTION bench.read_state(p_entity text, as_of timestamptz DEFAULT now(), request jsonb DEFAULT '{}')
RETURNS SETOF lake_gen.vec_fraud_v1 LANGUAGE sql STABLE ROWS 1 AS $f$ SELECT * FROM bench.read_with($1, $2, $3, true) $f$;
CREATE FUNCTION bench.read_ceiling(p_entity text, as_of timestamptz DEFAULT now(), request jsonb DEFAULT '{}')
RETURNS SETOF lake_gen.vec_fraud_v1 LANGUAGE sql STABLE ROWS 1 AS $f$ SELECT * FROM bench.read_with($1, $2, $3, false) $f$;
