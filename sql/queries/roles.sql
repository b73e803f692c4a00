-- Queries of `deribit-ts db reader` (deribit_ts/db/roles.py): a login role that reads schema deribit only.

-- name: role_state
-- The existing role %(name)s, if any: whether it holds any right beyond reading (attributes, memberships,
-- objects it owns in this database) and whether it is the role we are connected as.
SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls AS privileged,
       r.rolname = current_user AS is_current,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
              WHERE m.member = r.oid ORDER BY 1) AS member_of,
       EXISTS (SELECT FROM pg_class c WHERE c.relowner = r.oid)
       OR EXISTS (SELECT FROM pg_namespace n WHERE n.nspowner = r.oid)
       OR EXISTS (SELECT FROM pg_proc p WHERE p.proowner = r.oid) AS owns_objects
  FROM pg_roles r
 WHERE r.rolname = %(name)s;

-- name: schema_owners
-- The roles whose future objects in schema deribit the reader must be able to read: we (migrations run as
-- the role in use) and the schema's owner, when we may speak for it. No row: schema deribit does not exist.
SELECT DISTINCT o.rolname::text
  FROM pg_namespace n
 CROSS JOIN LATERAL (VALUES (n.nspowner), ((SELECT oid FROM pg_roles WHERE rolname = current_user))) AS v(oid)
  JOIN pg_roles o ON o.oid = v.oid
 WHERE n.nspname = 'deribit' AND pg_has_role(current_user, o.oid, 'MEMBER')
 ORDER BY 1;

-- name: create_role
-- The reader role {reader} with its SCRAM verifier {password} (a literal: DDL takes no parameters). The attributes
-- are spelled out so that renewing a role also takes back any it was given since.
CREATE ROLE {reader} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {password};

-- name: renew_role
-- An existing reader {reader} renewed: the same attributes as create_role, a new password.
ALTER ROLE {reader} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {password};

-- name: grant_connect
-- What the reader may do (this and the next three): connect to {database},
GRANT CONNECT ON DATABASE {database} TO {reader};

-- name: grant_usage
-- see schema deribit,
GRANT USAGE ON SCHEMA deribit TO {reader};

-- name: grant_select
-- read its relations (tables, views, materialized views, continuous aggregates),
GRANT SELECT ON ALL TABLES IN SCHEMA deribit TO {reader};

-- name: grant_execute
-- and call its functions.
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA deribit TO {reader};

-- name: default_select
-- What {owner} creates in schema deribit later (a migration, a changed view file) is readable too: relations,
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA deribit GRANT SELECT ON TABLES TO {reader};

-- name: default_execute
-- and functions.
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA deribit GRANT EXECUTE ON FUNCTIONS TO {reader};
