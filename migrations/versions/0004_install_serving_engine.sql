-- Installs what the scoring service keeps in the lake: the model registry, the decision log,
-- API keys, decide-and-commit's entity lock and landing function, and the database roles.
\ir ../../sql/07_serving.sql
\ir ../../sql/08_roles.sql
