-- Features for the property test: every aggregate, windows on every tile grain
-- (1 s, 10 s, 1 min, 5 min, 1 h), each window length unaligned to its tiles.
SELECT lake.define_feature('p_count', 'card_txn', 'count');
SELECT lake.define_feature('p_sum', 'card_txn', 'sum', 'amount');
SELECT lake.define_feature('p_avg', 'card_txn', 'avg', 'amount');
SELECT lake.define_feature('p_min', 'card_txn', 'min', 'amount');
SELECT lake.define_feature('p_max', 'card_txn', 'max', 'amount');
SELECT lake.define_feature('p_last_country', 'card_txn', 'last', 'country');
SELECT lake.define_feature('p_first_seen', 'card_txn', 'first_seen');
SELECT lake.define_feature('p_count_7s', 'card_txn', 'count', p_window => '7 seconds');
SELECT lake.define_feature('p_sum_45s', 'card_txn', 'sum', 'amount', '45 seconds');
SELECT lake.define_feature('p_distinct_45s', 'card_txn', 'count_distinct', 'merchant_id', '45 seconds');
SELECT lake.define_feature('p_max_10m', 'card_txn', 'max', 'amount', '10 minutes');
SELECT lake.define_feature('p_min_2h', 'card_txn', 'min', 'amount', '2 hours');
SELECT lake.define_feature('p_avg_2h', 'card_txn', 'avg', 'amount', '2 hours');
SELECT lake.define_feature('p_count_30h', 'card_txn', 'count', p_window => '30 hours');
SELECT lake.define_feature('p_distinct_3d', 'card_txn', 'count_distinct', 'merchant_id', '3 days 7 hours');
SELECT lake.define_feature('p_sum_3d', 'card_txn', 'sum', 'amount', '3 days 7 hours');
SELECT lake.define_feature_set('prop', 1, ARRAY[
    'p_count', 'p_sum', 'p_avg', 'p_min', 'p_max', 'p_last_country', 'p_first_seen',
    'p_count_7s', 'p_sum_45s', 'p_distinct_45s', 'p_max_10m', 'p_min_2h', 'p_avg_2h', 'p_count_30h',
    'p_distinct_3d', 'p_sum_3d']);

-- The oracle: the same features recomputed from scratch over the raw events, with no state and no tiles.
CREATE FUNCTION pg_temp.oracle(p_card text, p_as_of timestamptz) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH e AS (SELECT * FROM cards.transactions WHERE card_id = p_card AND event_time <= p_as_of),
    w AS (SELECT e.*, p_as_of - e.event_time AS ago FROM e)
    SELECT jsonb_build_object(
        'p_count', (SELECT count(*) FROM e),
        'p_sum', (SELECT coalesce(sum(amount), 0) FROM e),
        'p_avg', (SELECT avg(amount) FROM e),
        'p_min', (SELECT min(amount) FROM e),
        'p_max', (SELECT max(amount) FROM e),
        'p_last_country', (SELECT country FROM e ORDER BY event_time DESC, event_id DESC LIMIT 1),
        'p_first_seen', (SELECT min(event_time) FROM e),
        'p_count_7s', (SELECT count(*) FROM w WHERE ago < interval '7 seconds'),
        'p_sum_45s', (SELECT coalesce(sum(amount), 0) FROM w WHERE ago < interval '45 seconds'),
        'p_distinct_45s', (SELECT count(DISTINCT merchant_id) FROM w WHERE ago < interval '45 seconds'),
        'p_max_10m', (SELECT max(amount) FROM w WHERE ago < interval '10 minutes'),
        'p_min_2h', (SELECT min(amount) FROM w WHERE ago < interval '2 hours'),
        'p_avg_2h', (SELECT avg(amount) FROM w WHERE ago < interval '2 hours'),
        'p_count_30h', (SELECT count(*) FROM w WHERE ago < interval '30 hours'),
        'p_distinct_3d', (SELECT count(DISTINCT merchant_id) FROM w WHERE ago < interval '3 days 7 hours'),
        'p_sum_3d', (SELECT coalesce(sum(amount), 0) FROM w WHERE ago < interval '3 days 7 hours'),
        'age', (SELECT extract(epoch FROM p_as_of - max(event_time)) FROM e))
$$;
