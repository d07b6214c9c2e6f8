-- A second event source of other types: an integer-like varchar(8) key, bigint ids,
-- double precision values, a json payload.
CREATE SCHEMA other;
CREATE TABLE other.readings (
    id        bigint PRIMARY KEY,
    sensor    varchar(8) NOT NULL,
    value     double precision NOT NULL,
    tags      text[],
    payload   json,
    at        timestamptz NOT NULL,
    landed_at timestamptz NOT NULL DEFAULT now()
);
SELECT lake.define_source('reading', 'other.readings', 'sensor', 'sensor', 'at', 'id');
SELECT lake.define_feature('reading_sum', 'reading', 'sum', 'value');
SELECT lake.define_feature('reading_last_payload', 'reading', 'last', 'payload');
SELECT lake.define_feature('reading_count_1d', 'reading', 'count', p_window => '1 day');
SELECT lake.define_feature('reading_sum_1h', 'reading', 'sum', 'value', '1 hour');
SELECT lake.define_feature_set('sensor', 1, ARRAY['reading_sum', 'reading_last_payload', 'reading_count_1d', 'reading_sum_1h']);
