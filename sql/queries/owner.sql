-- Queries of the embedded cluster's bootstrap (deribit_ts/db/owner.py): the superuser makes the owner role and
-- hands over to it what the superuser made of deribit-ts (a cluster set up by a version without an owner role).

-- name: handover_objects
-- What %(superuser)s owns of deribit-ts in this database, in an order ALTER ... OWNER can follow: schemas,
-- tables (a hypertable's chunks follow it, and may not be altered alone), materialized views and continuous
-- aggregates, views, sequences of their own, TimescaleDB's internal relations of ours, types, routines. kind is
-- the ALTER statement's object type, name the qualified and quoted name.
-- Members of an extension (TimescaleDB's own objects) stay the superuser's.
WITH su AS (SELECT oid FROM pg_roles WHERE rolname = %(superuser)s),
ours AS (SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('deribit', 'deribit_ts', '_timescaledb_internal'))
SELECT kind, name, catalog, object_oid
  FROM (SELECT 0 AS step, 'SCHEMA' AS kind, quote_ident(n.nspname) AS name, 'pg_namespace' AS catalog,
               n.oid AS object_oid
          FROM ours n JOIN pg_namespace p ON p.oid = n.oid
         WHERE n.nspname <> '_timescaledb_internal' AND p.nspowner = (SELECT oid FROM su)
        UNION ALL
        SELECT CASE WHEN n.nspname = '_timescaledb_internal' THEN 4.5 WHEN c.relkind IN ('r', 'p') THEN 1
                    WHEN c.relkind = 'm' OR a.user_view_name IS NOT NULL THEN 2 WHEN c.relkind = 'v' THEN 3
                    ELSE 4 END,
               CASE WHEN c.relkind = 'm' OR a.user_view_name IS NOT NULL THEN 'MATERIALIZED VIEW'
                    WHEN c.relkind = 'v' THEN 'VIEW' WHEN c.relkind = 'S' THEN 'SEQUENCE'
                    WHEN c.relkind = 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
               c.oid::regclass::text, 'pg_class', c.oid
          FROM pg_class c
          JOIN ours n ON n.oid = c.relnamespace
          LEFT JOIN _timescaledb_catalog.continuous_agg a
                 ON a.user_view_schema = n.nspname AND a.user_view_name = c.relname
         WHERE c.relkind IN ('r', 'p', 'm', 'v', 'S', 'f') AND c.relowner = (SELECT oid FROM su)
           AND NOT EXISTS (SELECT FROM _timescaledb_catalog.chunk k  -- a chunk follows its hypertable
                            WHERE k.schema_name = n.nspname AND k.table_name = c.relname)
           AND NOT EXISTS (SELECT FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                              AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
        UNION ALL
        SELECT 5, CASE WHEN t.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text, 'pg_type', t.oid
          FROM pg_type t
          JOIN ours n ON n.oid = t.typnamespace
          LEFT JOIN pg_class r ON r.oid = t.typrelid
         WHERE t.typowner = (SELECT oid FROM su) AND n.nspname <> '_timescaledb_internal'
           AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND r.relkind = 'c'))
           AND NOT EXISTS (SELECT FROM pg_depend d
                            WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 6, CASE WHEN p.prokind = 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, p.oid::regprocedure::text, 'pg_proc', p.oid
          FROM pg_proc p
          JOIN ours n ON n.oid = p.pronamespace
         WHERE p.proowner = (SELECT oid FROM su) AND n.nspname <> '_timescaledb_internal'
           AND NOT EXISTS (SELECT FROM pg_depend d
                            WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
       ) AS o
 ORDER BY step, name;

-- name: still_owned_by
-- Whether %(role)s still owns the object %(object_oid)s of %(catalog)s (a table's sequences, chunks and indexes
-- change owner with it, so an ALTER of theirs may be due no longer).
SELECT coalesce(CASE %(catalog)s
                  WHEN 'pg_namespace' THEN (SELECT nspowner FROM pg_namespace WHERE oid = %(object_oid)s)
                  WHEN 'pg_class' THEN (SELECT relowner FROM pg_class WHERE oid = %(object_oid)s)
                  WHEN 'pg_type' THEN (SELECT typowner FROM pg_type WHERE oid = %(object_oid)s)
                  WHEN 'pg_proc' THEN (SELECT proowner FROM pg_proc WHERE oid = %(object_oid)s)
                END = (SELECT oid FROM pg_roles WHERE rolname = %(role)s), false);

-- name: default_privileges_of
-- The default privileges %(superuser)s gave in deribit-ts's schemas (to `db reader` roles): the owner, who
-- creates the objects from now on, gives the same. objects: r tables, S sequences, f functions, T types.
SELECT n.nspname, d.defaclobjtype::text AS objects, g.rolname AS grantee, a.privilege_type
  FROM pg_default_acl d
  JOIN pg_namespace n ON n.oid = d.defaclnamespace
 CROSS JOIN LATERAL aclexplode(d.defaclacl) AS a
  JOIN pg_roles g ON g.oid = a.grantee
 WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %(superuser)s)
   AND n.nspname IN ('deribit', 'deribit_ts') AND g.rolname <> %(superuser)s
 ORDER BY 1, 2, 3, 4;

-- name: hand_over_jobs
-- TimescaleDB's jobs (policies) that %(superuser)s made run as %(owner)s from now on (ids below 1000 are
-- TimescaleDB's own).
UPDATE _timescaledb_config.bgw_job
   SET owner = %(owner)s::regrole
 WHERE owner = %(superuser)s::regrole AND id >= 1000
RETURNING id;

-- name: role_exists
-- Whether the role %(name)s exists in the cluster.
SELECT 1 FROM pg_roles WHERE rolname = %(name)s;

-- name: create_owner
-- The owner role {role} with its SCRAM verifier {password} (a literal: DDL takes no parameters): it may log in
-- and create databases (the empty one a backup is restored into), nothing a superuser alone may. The attributes
-- are spelled out so that renewing the role also takes back any it was given since.
CREATE ROLE {role} LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {password};

-- name: renew_owner
-- The existing owner role {role} renewed: the same attributes as create_owner, the password {password}.
ALTER ROLE {role} LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {password};

-- name: database_exists
-- Whether the database %(name)s exists in the cluster.
SELECT 1 FROM pg_database WHERE datname = %(name)s;

-- name: create_database
-- The database {database}, owned by {role}.
CREATE DATABASE {database} OWNER {role};

-- name: database_owner
-- {role} owns the database {database} (one made before the owner role existed is the superuser's).
ALTER DATABASE {database} OWNER TO {role};

-- name: create_extension
-- TimescaleDB in the current database (only a superuser may create it).
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- name: lock_timeout
-- How long a statement of this transaction waits for another session's locks (SET LOCAL lock_timeout).
SELECT set_config('lock_timeout', %(timeout)s, true);

-- name: hand_over_object
-- {role} owns the object {name} of type {kind} from now on: kind and name as handover_objects reads them (name
-- quoted by the catalog, with a routine's argument types).
ALTER {kind} {name} OWNER TO {role};

-- name: hand_over_default_privileges
-- The owner {role} gives {grantee} the {privilege} on the {objects} it creates in {schema} from now on (as the
-- superuser did: default_privileges_of).
ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} GRANT {privilege} ON {objects} TO {grantee};
