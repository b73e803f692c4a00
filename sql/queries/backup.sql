-- Queries of `deribit-ts db backup` and `db restore` (deribit_ts/db/backup.py).

-- name: stable_text
-- The row text the checksums hash must not depend on session settings the two ends may differ in (each
-- set_config(..., false) is the session's SET).
SELECT set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO, MDY', false),
       set_config('IntervalStyle', 'postgres', false), set_config('extra_float_digits', '1', false),
       set_config('bytea_output', 'hex', false);

-- name: tables
-- Tables (plain, partitioned, hypertables) and materialized views of the schemas %(schemas)s. A hypertable is
-- queried through its root, which reads every chunk.
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
 ORDER BY 1, 2;

-- name: checksum
-- Rows of {table} and their checksum. Order-independent and streaming (no giant string_agg): the sum of each
-- row's md5 as two 64-bit halves, hashed once more. Equal multisets of rows give equal checksums; the row count
-- rules out pairs cancelling.
SELECT count(*),
       md5(coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text || ':' ||
           coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text)
  FROM (SELECT md5(t::text) AS h FROM {table} AS t) AS rows;

-- name: server_major
-- The server's version number (e.g. 170002); its major version is this divided by 10,000.
SELECT current_setting('server_version_num');

-- name: snapshot_transaction
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- name: export_snapshot
-- The transaction's snapshot, for pg_dump --snapshot.
SELECT pg_export_snapshot();

-- name: pre_restore
-- TimescaleDB's restore procedure; {schema} is the extension's.
SELECT {schema}.timescaledb_pre_restore();

-- name: post_restore
SELECT {schema}.timescaledb_post_restore();

-- name: non_empty_timescale
-- What a restore target must not hold (where timescaledb is installed): schemas but public and the system's and
-- the extension's, relations in public that are not the extension's, hypertables. Zeros: empty.
SELECT (SELECT count(*) FROM pg_namespace
         WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%'
           AND nspname NOT LIKE '\_timescaledb%' AND nspname NOT IN ('timescaledb_information',
               'timescaledb_experimental', 'toolkit_experimental')),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND NOT EXISTS (
               SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')),
       (SELECT count(*) FROM _timescaledb_catalog.hypertable);

-- name: non_empty
-- The same without timescaledb: schemas but public and the system's, relations in public.
SELECT (SELECT count(*) FROM pg_namespace
         WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%'),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'),
       0;

-- name: extension_schema
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb';

-- name: has_timescaledb
SELECT 1 FROM pg_extension WHERE extname = 'timescaledb';

-- name: installed_timescaledb
-- The installed version of timescaledb and its schema.
SELECT e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'timescaledb';

-- name: available_timescaledb
SELECT version FROM pg_available_extension_versions WHERE name = 'timescaledb';

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_timescaledb
-- TimescaleDB at the backup's {version} (a literal), in the {schema} it had there.
CREATE EXTENSION timescaledb SCHEMA {schema} VERSION {version};

-- name: is_superuser
-- Whether the session's role is a superuser (a restore needs one).
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;

-- name: database_owner
-- The database's owner and whether it is a superuser.
SELECT r.rolname, r.rolsuper FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
 WHERE d.datname = current_database();
