-- Two broken definitions for the leakage test: one counts the card's transactions whatever their time
-- (later ones too), one reads a millisecond past as_of (so the event itself, read a microsecond
-- before it, falls inside). Both find the card by the request payload, which is the event row.
-- Feature set fraud v2 is v1 plus both.
SELECT lake.define_on_demand('leaky_lifetime_count',
    '(SELECT count(*) FROM cards.transactions t WHERE t.card_id = request->>''card_id'')');
SELECT lake.define_on_demand('leaky_includes_event',
    '(SELECT count(*) FROM cards.transactions t
       WHERE t.card_id = request->>''card_id'' AND t.event_time <= as_of + interval ''1 millisecond'')');
SELECT lake.define_feature_set('fraud', 2,
    (SELECT features FROM lake.feature_sets WHERE name = 'fraud' AND version = 1)
    || ARRAY['leaky_lifetime_count', 'leaky_includes_event']);
