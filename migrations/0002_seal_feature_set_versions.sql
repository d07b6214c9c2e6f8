-- A feature set version is sealed once the transaction that defined it commits: services cache its
-- shape (features, rules) by version. The transaction that defines a version is recorded; versions
-- defined before this migration are sealed already.
ALTER TABLE lake.feature_sets ADD COLUMN defined_in xid8;
UPDATE lake.feature_sets SET defined_in = '0'::xid8;
ALTER TABLE lake.feature_sets ALTER COLUMN defined_in SET DEFAULT pg_current_xact_id(),
                              ALTER COLUMN defined_in SET NOT NULL;
COMMENT ON COLUMN lake.feature_sets.defined_in IS 'transaction that defined the version; rules can be added only inside it, the version is immutable after it commits';
