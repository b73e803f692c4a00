-- Queries of `deribit-ts db migrate` and `db status` (deribit_ts/db/migrate.py).

-- name: timescaledb_available
-- A row when the server can create the timescaledb extension.
SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb';

-- name: lock
-- Serializes concurrent runs (a session advisory lock on %(key)s).
SELECT pg_advisory_lock(%(key)s);

-- name: unlock
SELECT pg_advisory_unlock(%(key)s);

-- name: ledger_schema
-- The ledger: its schema, then its two tables (the migrations' and the repeatable files').
CREATE SCHEMA IF NOT EXISTS deribit_ts;

-- name: ledger_migrations
CREATE TABLE IF NOT EXISTS deribit_ts.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    status     text NOT NULL CHECK (status IN ('applied', 'skipped')),
    edition    text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration   interval NOT NULL DEFAULT '0'
);

-- name: ledger_repeatables
CREATE TABLE IF NOT EXISTS deribit_ts.schema_repeatables (
    name       text PRIMARY KEY,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration   interval NOT NULL DEFAULT '0'
);

-- name: ledger_exists
SELECT to_regclass('deribit_ts.schema_migrations') IS NOT NULL;

-- name: applied_migrations
SELECT version, name, sha256, status FROM deribit_ts.schema_migrations;

-- name: applied_repeatables
SELECT name, sha256 FROM deribit_ts.schema_repeatables;

-- name: record_repeatable
-- A repeatable file %(name)s applied with content %(sha256)s in %(seconds)s.
INSERT INTO deribit_ts.schema_repeatables (name, sha256, applied_at, duration)
VALUES (%(name)s, %(sha256)s, now(), make_interval(secs => %(seconds)s))
    ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now(), duration = EXCLUDED.duration;

-- name: repeatables_stale
-- The repeatable files run after the migrations; should they fail (or be refused), this mark makes the next run
-- apply them again even though none of them changed.
UPDATE deribit_ts.schema_repeatables SET sha256 = 'stale: a migration ran since';

-- name: record_migration
-- Migration %(version)s applied or skipped (%(status)s) on %(edition)s in %(seconds)s.
INSERT INTO deribit_ts.schema_migrations (version, name, sha256, status, edition, applied_at, duration)
VALUES (%(version)s, %(name)s, %(sha256)s, %(status)s, %(edition)s, now(), make_interval(secs => %(seconds)s))
    ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, sha256 = EXCLUDED.sha256, status = EXCLUDED.status,
                                        edition = EXCLUDED.edition, applied_at = now(), duration = EXCLUDED.duration;

-- name: user_objects
-- Users' views and materialized views built on deribit-ts' relations or functions, at any depth (a view on a view
-- on deribit.ohlcv_1m counts). A file that would drop one (a released migration's DROP ... CASCADE, say) is
-- refused and rolled back. (Run without parameters: its percent signs are format()'s and LIKE's.)
WITH RECURSIVE ours AS (
    SELECT c.oid, 'pg_class'::regclass AS catalog FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('deribit', 'deribit_ts')
    UNION ALL
    SELECT p.oid, 'pg_proc'::regclass FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname IN ('deribit', 'deribit_ts')
), built_on (oid) AS (
    SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
      JOIN ours o ON o.oid = d.refobjid AND o.catalog = d.refclassid
     WHERE d.classid = 'pg_rewrite'::regclass
    UNION
    SELECT r.ev_class FROM built_on b
      JOIN pg_depend d ON d.refobjid = b.oid AND d.refclassid = 'pg_class'::regclass
                      AND d.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite r ON r.oid = d.objid
)
SELECT format('%s %I.%I', CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, n.nspname, c.relname)
  FROM built_on b JOIN pg_class c ON c.oid = b.oid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('deribit', 'deribit_ts', 'pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE '\_timescaledb%' AND n.nspname NOT LIKE 'timescaledb\_%';

-- name: grants
-- Privileges granted on deribit's relations, with the relation's oid: a relation a migration drops and creates
-- again (a released one re-creates the rollups when a server gains the Community license) gets them back.
SELECT c.oid, c.relname, r.rolname, a.privilege_type, a.is_grantable
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL aclexplode(c.relacl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE n.nspname = 'deribit' AND a.grantee <> c.relowner;

-- name: relation_oids
-- The relations of schema deribit now, by name.
SELECT relname, oid FROM pg_class WHERE relnamespace = 'deribit'::regnamespace;

-- name: grant
-- {privilege} is a keyword from aclexplode (SELECT, INSERT, ...), {grantee} a role or PUBLIC (a NULL role),
-- {grant_option} WITH GRANT OPTION or nothing.
GRANT {privilege} ON {relation} TO {grantee}{grant_option};
