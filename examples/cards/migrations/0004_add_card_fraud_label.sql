-- replaces: 0009_add_card_fraud_label
-- A card transaction is fraudulent when a chargeback names it; chargebacks arrive days later, so a
-- training set takes the label as known at a cutoff.
SELECT lake.define_label('card_fraud', 'card_txn', 'card_chargeback', 'event_id');
