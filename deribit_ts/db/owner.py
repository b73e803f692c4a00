"""The embedded cluster's owner role: what deribit-ts connects as, no superuser.

The superuser initdb makes (``deribit_ts``) is used to bootstrap only: it creates the owner role, the database
(owned by the owner), the TimescaleDB extension, and hands over to the owner whatever it made of deribit-ts
before (a cluster set up by an earlier version ran everything as the superuser). From then on every command
connects as the owner: migrations, backfill, collect, refresh, report, export, backup. The owner owns the
database and every object in it, so it may do all of that, and nothing a superuser alone may do: no COPY ...
PROGRAM, no server files, no other roles. The collector's takeover of a frozen leader (pg_terminate_backend)
needs no more: a role may end the sessions of its own role. TimescaleDB's background jobs run as the role that
owns them: the owner.

One further right: CREATEDB, so that the owner can make the empty database a backup is restored into. Restoring
itself is the superuser's (TimescaleDB's restore procedure stops its job scheduler, which only a superuser may):
`deribit-ts restore` then hands what it restored over to the database's owner (deribit_ts/db/backup.py).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from deribit_ts.db.connect import connect
from deribit_ts.db.queries import compose, query
from deribit_ts.db.roles import scram_verifier
from deribit_ts.errors import UserError

HANDOVER_LOCK_TIMEOUT = "20s"  # a handover waits this long for another session's locks, then says what to do
_DEFAULT_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES"}
_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "EXECUTE"}


def bootstrap(superuser_dsn: str, database: str, owner: str, password: str) -> int:
    """Make (or renew) the owner role and the database; returns how many objects were handed over to the owner."""
    role = sql.Identifier(owner)
    with connect(_other_database(superuser_dsn, "postgres"), autocommit=True) as conn:
        exists = conn.execute(query("owner", "role_exists"), {"name": owner}).fetchone()
        ddl = "renew_owner" if exists else "create_owner"
        conn.execute(compose("owner", ddl, role=role, password=sql.Literal(scram_verifier(password))))
        db = sql.Identifier(database)
        if not conn.execute(query("owner", "database_exists"), {"name": database}).fetchone():
            conn.execute(compose("owner", "create_database", database=db, role=role))
        conn.execute(compose("owner", "database_owner", database=db, role=role))
    with connect(superuser_dsn) as conn:
        conn.execute(query("owner", "create_extension"))
        handed = hand_over(conn, conn.info.user, owner)
    return handed


def hand_over(conn: psycopg.Connection, superuser: str, owner: str) -> int:
    """Give `owner` what `superuser` owns of deribit-ts, its default privileges and its jobs, in one transaction."""
    conn.execute(query("owner", "lock_timeout"), {"timeout": HANDOVER_LOCK_TIMEOUT})
    role = sql.Identifier(owner)
    handed = 0
    try:
        objects = conn.execute(query("owner", "handover_objects"), {"superuser": superuser}).fetchall()
        for kind, name, catalog, oid in objects:
            still = conn.execute(
                query("owner", "still_owned_by"), {"catalog": catalog, "object_oid": oid, "role": superuser}
            )
            if still.fetchone() == (True,):  # (the catalog quotes `name`; `kind` is one of the query's constants)
                conn.execute(compose("owner", "hand_over_object", kind=sql.SQL(kind), name=sql.SQL(name), role=role))
                handed += 1
        defaults = conn.execute(query("owner", "default_privileges_of"), {"superuser": superuser}).fetchall()
        for schema, objects, grantee, privilege in defaults:
            if objects in _DEFAULT_OBJECTS and privilege in _PRIVILEGES:
                conn.execute(
                    compose(
                        "owner",
                        "hand_over_default_privileges",
                        role=role,
                        schema=sql.Identifier(schema),
                        privilege=sql.SQL(privilege),
                        objects=sql.SQL(_DEFAULT_OBJECTS[objects]),
                        grantee=sql.Identifier(grantee),
                    )
                )
        jobs = conn.execute(query("owner", "hand_over_jobs"), {"superuser": superuser, "owner": owner}).fetchall()
        conn.commit()
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        raise UserError(
            f"cannot make {owner!r} the owner of deribit-ts's tables: other sessions hold them (collectors or "
            "backfills of an earlier version, connected as the superuser); stop them and run `deribit-ts db up`"
        ) from None
    return handed + len(jobs)


def _other_database(dsn: str, database: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=database)
