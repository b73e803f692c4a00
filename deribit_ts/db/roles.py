"""Read-only login roles: `deribit-ts db reader NAME` gives a notebook or a BI tool schema deribit and nothing else.

Such a role is no superuser and a member of no role (so no COPY ... PROGRAM, no server files), has USAGE on
schema deribit, SELECT on its relations, EXECUTE on its functions, and default privileges so that what later
migrations create there is readable too. It has no USAGE on deribit_ts: the views of deribit read the bookkeeping
as their owner, the reader cannot read it directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from deribit_ts.db.connect import connect
from deribit_ts.db.queries import compose, query
from deribit_ts.errors import UserError

# A plain identifier, lower case (unquoted SQL folds to it), within PostgreSQL's 63 bytes; pg_ names are reserved.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)

# The reader's grants, in order (sql/queries/roles.sql), and the default privileges given for each owner of
# what schema deribit will hold.
GRANTS = ("grant_connect", "grant_usage", "grant_select", "grant_execute")
DEFAULTS = ("default_select", "default_execute")


@dataclass(frozen=True)
class Reader:
    role: str
    dsn: str  # with the password: shown once, stored nowhere
    created: bool  # False: the role existed, its grants were renewed and its password rotated


def check_name(name: str) -> str:
    if not ROLE_NAME.fullmatch(name) or name.startswith("pg_"):
        raise UserError(
            f"{name[:80]!r} is not a role name deribit-ts creates: use lower-case letters, digits and _, "
            "starting with a letter or _, at most 63 characters, not starting with pg_"
        )
    return name


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677): the server never sees the password, so it
    cannot reach the server's log even with log_statement = 'all'."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def ensure_reader(dsn: str, name: str) -> Reader:
    """Create the role NAME (or renew an existing reader's grants and password) in one transaction."""
    role = check_name(name)
    password = secrets.token_urlsafe(24)  # URL-safe: the DSN needs no quoting
    ident = sql.Identifier(role)
    with connect(dsn) as conn:
        database = conn.info.dbname
        state = conn.execute(query("roles", "role_state"), {"name": role}).fetchone()
        if state is not None:
            _refuse_if_not_a_reader(role, *state)
        owners = [r[0] for r in conn.execute(query("roles", "schema_owners")).fetchall()]
        if not owners:
            raise UserError(f"database {database!r} has no schema deribit yet: run `deribit-ts db migrate` first")
        verifier = sql.Literal(scram_verifier(password))
        ddl = "create_role" if state is None else "renew_role"
        conn.execute(compose("roles", ddl, reader=ident, password=verifier))
        for grant in GRANTS:
            conn.execute(compose("roles", grant, reader=ident, database=sql.Identifier(database)))
        for owner in owners:
            for default in DEFAULTS:
                conn.execute(compose("roles", default, owner=sql.Identifier(owner), reader=ident))
    return Reader(role=role, dsn=_dsn_for(dsn, role, password), created=state is None)


def _refuse_if_not_a_reader(role: str, privileged: bool, is_current: bool, member_of: list, owns: bool) -> None:
    """An existing role is renewed only if it looks like a reader: never take over (or lock out) another role."""
    why = (
        "it is the role deribit-ts connects as"
        if is_current
        else "it has attributes beyond LOGIN (superuser, createrole, createdb, replication or bypassrls)"
        if privileged
        else f"it is a member of {', '.join(member_of)}"
        if member_of
        else "it owns objects in this database"
        if owns
        else None
    )
    if why:
        raise UserError(f"role {role!r} exists and is not a read-only role ({why}): choose another name")


def _dsn_for(dsn: str, role: str, password: str) -> str:
    """A postgresql:// URL to the same server and database, as ROLE."""
    params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items() if v is not None}
    for key in ("user", "password", "passfile", "service"):
        params.pop(key, None)
    host = params.pop("host", "")
    port = params.pop("port", "")
    dbname = params.pop("dbname", "")
    netloc = quote(host, safe="") if host.startswith("/") else (f"[{host}]" if ":" in host else host)
    if port:
        netloc += f":{port}"
    query_string = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{quote(role)}:{quote(password, safe='')}@{netloc}/{quote(dbname, safe='')}{query_string}"
