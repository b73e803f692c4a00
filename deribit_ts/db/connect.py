"""Connections and what the server can do (PostgreSQL/TimescaleDB versions, edition)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from deribit_ts.config import mask_password
from deribit_ts.db.queries import query
from deribit_ts.errors import DatabaseUnavailable, DiskFull

CONNECT_TIMEOUT_S = 10


def connect(dsn: str, *, autocommit: bool = False, application_name: str = "deribit-ts") -> psycopg.Connection:
    """Open a connection, or fail with one line that says which server and what to do."""
    try:
        return psycopg.connect(
            dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name
        )
    except psycopg.OperationalError as exc:
        raise _unavailable(dsn, exc) from None


def server_reason(exc: BaseException) -> str:
    """What went wrong, in one short line: the server's message (and its detail) when it sent one. str() of a
    psycopg error also carries the server's CONTEXT (the whole statement, the PL/pgSQL call chain), which would push
    what to do off the end of a one-line error."""
    text = str(exc)
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        detail = exc.diag.message_detail
        text = exc.diag.message_primary + (f" ({detail})" if detail else "")
    return " ".join(text.split()) or exc.__class__.__name__


DISK_FULL = "53100"  # SQLSTATE disk_full
# A server process that fails to write (its WAL, a temporary file) may die before it can answer with a SQLSTATE:
# the connection is then lost, and only the message says why.
_NO_SPACE = ("No space left on device", "could not extend file", "disk full")


def disk_full(exc: BaseException, *, after: str) -> DiskFull | None:
    """The one line for a database error that means "the disk is full" (SQLSTATE 53100, or a connection lost with
    ENOSPC), saying what to do; None for any other error. `after` says what happens to the work (e.g. "every
    committed window is kept")."""
    if not isinstance(exc, psycopg.Error):
        return None
    text = " ".join(str(exc).split())
    if getattr(exc, "sqlstate", None) != DISK_FULL and not any(words in text for words in _NO_SPACE):
        return None
    return DiskFull(
        f"the database server's disk is full ({text[:200]}): {after}; free space on the disk of its data directory "
        "(or its tablespace), then re-run the same command: it resumes where it stopped"
    )


TOO_MANY_CONNECTIONS = "53300"  # SQLSTATE too_many_connections: max_connections or a role/database limit
# A refusal at connection time carries no SQLSTATE in psycopg (the server's FATAL comes as the message only).
_REFUSALS = ("too many clients", "too many connections")


def _unavailable(dsn: str, exc: psycopg.OperationalError) -> DatabaseUnavailable:
    reason = " ".join(str(exc).split()) or exc.__class__.__name__
    if exc.sqlstate == TOO_MANY_CONNECTIONS or any(refusal in reason for refusal in _REFUSALS):
        # The server is up but out of connection slots: the backfill's workers are what the user can lower.
        return DatabaseUnavailable(
            "the database refused more connections (max_connections): lower --workers / DERIBIT_TS_WORKERS"
        )
    return DatabaseUnavailable(
        f"cannot connect to the database {mask_password(dsn)}: {reason} "
        "(check --dsn / DERIBIT_TS_DSN, or run `deribit-ts db up` for the embedded cluster)"
    )


async def connect_async(
    dsn: str, *, autocommit: bool = True, application_name: str = "deribit-ts"
) -> psycopg.AsyncConnection:
    """The asyncio twin of connect()."""
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name
        )
    except psycopg.OperationalError as exc:
        raise _unavailable(dsn, exc) from None


@dataclass(frozen=True)
class ServerInfo:
    postgres_version: str
    timescaledb_version: str | None  # None: the extension is not installed in this database
    edition: str | None  # 'apache' | 'timescale' | None when the library is not loaded

    @property
    def has_tsl(self) -> bool:
        """Continuous aggregates, compression and background jobs are available."""
        return self.edition == "timescale"


def server_info(conn: psycopg.Connection) -> ServerInfo:
    # timescaledb.license can only be set at server start, so one probe per connection is enough.
    row = conn.execute(query("server", "info")).fetchone()
    assert row is not None
    return ServerInfo(postgres_version=row[0], timescaledb_version=row[1], edition=row[2] or None)


def database_size(conn: psycopg.Connection) -> int | None:
    """The connected database's size on disk, in bytes."""
    row = conn.execute(query("server", "database_size")).fetchone()
    return row[0] if row else None
