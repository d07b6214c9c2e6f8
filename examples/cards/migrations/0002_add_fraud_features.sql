-- replaces: 0003_add_fraud_features
-- Fraud features of a card, the fraud feature set (version 1) and its rules.

-- Lifetime aggregates
SELECT lake.define_feature('card_txn_count', 'card_txn', 'count');
SELECT lake.define_feature('card_amount_sum', 'card_txn', 'sum', 'amount');
SELECT lake.define_feature('card_amount_avg', 'card_txn', 'avg', 'amount');
SELECT lake.define_feature('card_amount_min', 'card_txn', 'min', 'amount');
SELECT lake.define_feature('card_amount_max', 'card_txn', 'max', 'amount');
SELECT lake.define_feature('card_last_country', 'card_txn', 'last', 'country');
SELECT lake.define_feature('card_last_merchant', 'card_txn', 'last', 'merchant_id');
SELECT lake.define_feature('card_first_seen', 'card_txn', 'first_seen');
SELECT lake.define_feature('card_last_seen', 'card_txn', 'max', 'event_time');
SELECT lake.define_feature('card_chargeback_count', 'card_chargeback', 'count');

-- Sliding windows (exact at as_of)
SELECT lake.define_feature('card_txn_count_60s', 'card_txn', 'count', p_window => '60 seconds');
SELECT lake.define_feature('card_amount_sum_60s', 'card_txn', 'sum', 'amount', '60 seconds');
SELECT lake.define_feature('card_merchants_5m', 'card_txn', 'count_distinct', 'merchant_id', '5 minutes');
SELECT lake.define_feature('card_txn_count_1h', 'card_txn', 'count', p_window => '1 hour');
SELECT lake.define_feature('card_amount_sum_24h', 'card_txn', 'sum', 'amount', '24 hours');
SELECT lake.define_feature('card_amount_max_24h', 'card_txn', 'max', 'amount', '24 hours');
SELECT lake.define_feature('card_amount_avg_30d', 'card_txn', 'avg', 'amount', '30 days');

-- Batch features (loaded by an offline job)
SELECT lake.define_batch_feature('card_credit_tier', 'card_profile', 'credit_tier');
SELECT lake.define_batch_feature('card_credit_limit', 'card_profile', 'credit_limit', p_cold_start => '500');
SELECT lake.define_batch_feature('card_tenure_days', 'card_profile', 'tenure_days', p_cold_start => '0');

-- On-demand features (request payload and stored features)
SELECT lake.define_on_demand('amount_to_avg_30d',
    '(request->>''amount'')::numeric / nullif(f.card_amount_avg_30d, 0)');
SELECT lake.define_on_demand('seconds_since_last_txn',
    'extract(epoch FROM as_of - f.card_last_seen)');
SELECT lake.define_on_demand('country_changed',
    'CASE WHEN f.card_last_country IS NULL THEN 0 WHEN (request->>''country'') IS DISTINCT FROM f.card_last_country THEN 1 ELSE 0 END');

SELECT lake.define_feature_set('fraud', 1, ARRAY[
    'card_txn_count', 'card_amount_sum', 'card_amount_avg', 'card_amount_min', 'card_amount_max',
    'card_last_country', 'card_last_merchant', 'card_first_seen', 'card_last_seen', 'card_chargeback_count',
    'card_txn_count_60s', 'card_amount_sum_60s', 'card_merchants_5m', 'card_txn_count_1h',
    'card_amount_sum_24h', 'card_amount_max_24h', 'card_amount_avg_30d',
    'card_credit_tier', 'card_credit_limit', 'card_tenure_days',
    'amount_to_avg_30d', 'seconds_since_last_txn', 'country_changed']);

SELECT lake.define_rule('fraud', 1, 'card_testing',
    'f.card_txn_count_60s >= 5 AND f.card_merchants_5m >= 3', 'review',
    'many transactions across merchants within a minute');
SELECT lake.define_rule('fraud', 1, 'over_limit_24h',
    'f.card_amount_sum_24h + coalesce((request->>''amount'')::numeric, 0) > f.card_credit_limit', 'decline',
    'amount of the last 24 hours plus this one exceeds the credit limit');
SELECT lake.define_rule('fraud', 1, 'country_jump',
    'f.country_changed = 1 AND f.seconds_since_last_txn < 3600', 'review',
    'a different country within an hour of the last transaction');
