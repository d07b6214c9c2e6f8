-- Installs the contextlake engine (schema lake): catalog, state generation,
-- definition API, one-snapshot read, freshness views, retention and verify.
\ir ../../sql/01_catalog.sql
\ir ../../sql/02_state.sql
\ir ../../sql/03_define.sql
\ir ../../sql/04_read.sql
\ir ../../sql/05_freshness.sql
\ir ../../sql/06_retention.sql
