-- Queries of `deribit-ts export` (deribit_ts/export.py). A {query} in parentheses is a checked SELECT (a view's
-- rows, or the user's --sql made safe by sqlglot) whose values are literals: COPY takes no parameters.

-- name: public_relations
-- The views, tables and materialized views of schema deribit (what a VIEW argument and --sql may name).
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'deribit' AND c.relkind IN ('v', 'm', 'r', 'p', 'f');

-- name: columns
-- No rows: only the columns of {query} (which one --since/--until bound).
SELECT * FROM ({query}) q LIMIT 0;

-- name: view
-- Every row of the public {view}.
SELECT * FROM {view};

-- name: bounded
-- The rows of {query} that meet every one of {conditions} (on q's columns).
SELECT * FROM ({query}) q WHERE {conditions};

-- name: read_only
SET TRANSACTION READ ONLY;

-- name: utc
-- Times in UTC whatever the server's default, so every format writes the same instants.
SET LOCAL TimeZone = 'UTC';

-- name: csv
COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true);
