-- The state-row reference must return the product's vector: count the quiet cards where it does not.
SELECT count(*)
  FROM generate_series(1, 2000) AS c,
       LATERAL (SELECT 'card-' || lpad(c::text, 6, '0') AS k, statement_timestamp() AS t,
                       '{"amount": 300, "country": "DE"}'::jsonb AS req) AS q
 WHERE (SELECT row(x.*)::text FROM bench.read_state(q.k, q.t, q.req) AS x)
       IS DISTINCT FROM (SELECT row(x.*)::text FROM api.read_fraud_v1(q.k, q.t, q.req) AS x);
