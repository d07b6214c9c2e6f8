-- Installs the training export: lake.labels, lake.define_label, lake.training_statement.
\ir ../../sql/12_training.sql
