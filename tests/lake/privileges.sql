-- Every relation, function, schema and database privilege a role holds in the lake's database
-- (objects of a schema it cannot use are out of its reach whatever their own privileges).
SELECT 'relation', c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'v', 'm', 'p', 'S')
   AND has_table_privilege(%(role)s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
UNION ALL
SELECT 'function', replace(p.oid::regprocedure::text, ', ', ',')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND has_function_privilege(%(role)s, p.oid, 'EXECUTE') AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
UNION ALL
SELECT 'schema', n.nspname FROM pg_namespace n
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_'
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE, CREATE')
UNION ALL
SELECT 'database', 'TEMPORARY' WHERE has_database_privilege(%(role)s, current_database(), 'TEMPORARY')
