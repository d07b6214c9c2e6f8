-- The contract schema: what the service and analysts may call or read (views and functions over the
-- private schemas lake and lake_gen). Its objects are installed with the engine's code.
CREATE SCHEMA IF NOT EXISTS api;
COMMENT ON SCHEMA api IS 'the contract of the lake: views and functions the service and analysts call or read; the tables stay private';
