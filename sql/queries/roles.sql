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
