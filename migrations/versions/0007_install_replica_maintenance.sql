-- Installs row-level replica maintenance for landing tables a logical replication subscription feeds.
\ir ../../sql/11_replication.sql
