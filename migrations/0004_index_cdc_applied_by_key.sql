-- Applying a change event asks whether its upstream key was landed before from another source
-- position (a key created again upstream): the ledger of applied changes is searched by key.
CREATE INDEX cdc_applied_key ON lake.cdc_applied (upstream_table, row_key);
