"""Leadership and heartbeat: a PostgreSQL session advisory lock held on a connection of its own, a lease on the
leader's heartbeat, and an epoch that fences every write.

Any number of `deribit-ts collect` processes may run against one database. Each opens a dedicated connection
and tries `pg_try_advisory_lock` every couple of seconds; the one that gets it leads, the others stand by. The
lock belongs to that session, so it is released by the server the moment the leader's process dies or its
connection is lost (TCP keepalives bound how long a silent network failure can hide that), and a standby takes
over at its next try.

A leader that is frozen (SIGSTOP, a stuck disk, a stalled event loop) keeps its session and so the lock. Its
heartbeat (deribit_ts.collector_processes.beat_at, written every HEARTBEAT_S on the lock connection, in the
database's clock: no clocks of two hosts are ever compared) is its lease: a standby that finds the lock holder's
heartbeat older than the lease (DERIBIT_TS_LEADER_LEASE_S, default 30 s) terminates the holder's lock session
(pg_terminate_backend: the only way to take a session lock from a process that cannot act; the holder is by then
known to be doing nothing useful, and whatever it would still write is fenced off) and takes the lock at once. So
a standby leads within lease + STANDBY_POLL_S (32 s by default) of the frozen leader's last heartbeat.

Every takeover increments the epoch (deribit_ts.collector_lease). Every connection a leader opens carries its
epoch, and a trigger on the collector's tables checks it in the same transaction as each write (migration 0026):
a leader that resumes after losing its lease commits nothing more, and learns it at its next heartbeat.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import time
from datetime import datetime

import psycopg
from psycopg import AsyncConnection

from deribit_ts.config import env_int
from deribit_ts.db.connect import connect_async
from deribit_ts.db.queries import query
from deribit_ts.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

APPLICATION = "deribit-ts collect"  # the start of every collector connection's application_name
LEASE_ENV = "DERIBIT_TS_LEADER_LEASE_S"
DEFAULT_LEASE_S = 30  # a standby takes over a leader whose heartbeat is older than this
FENCED = "DT001"  # the SQLSTATE of a write by a leader whose epoch is over (deribit_ts.check_leader_epoch)
TERMINATION_WAIT_S = 10.0  # how long a terminated lock session may take to end
LOCK_KEY = (1685222515, 1)  # ("drts", collector); sql/70_collector.sql reads pg_locks with the same pair
BEAT_TIMEOUT_S = 10.0  # a heartbeat that takes longer than this means the connection is gone
# Keepalives on the lock connection: the server notices a leader whose network vanished within ~15 s.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}


class LeadershipLost(Exception):
    """Another process took the leadership over (this one's heartbeat was older than the lease)."""


MIN_LEASE_S = 10  # two heartbeats (collector.HEARTBEAT_S): a leader is never deposed for one slow beat


def lease_s() -> int:
    """The lease in whole seconds, DERIBIT_TS_LEADER_LEASE_S (10-3600)."""
    return env_int(LEASE_ENV, DEFAULT_LEASE_S, minimum=MIN_LEASE_S, maximum=3600)


def fenced(exc: BaseException) -> bool:
    """Whether `exc` is the database refusing a write of a leader whose epoch is over."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate == FENCED


@functools.cache
def this_process_id() -> str:
    """This process's identity: in its heartbeat row, in the lease while it leads, and in the application_name of
    every connection it opens (application_name())."""
    return f"{socket.gethostname()}/{os.getpid()}/{int(time.time())}"


def application_name() -> str:
    """Every collector connection names its process, so that a standby taking the lease over can end the open
    transactions of a leader that froze inside one: their row locks (rows of a data table written before the
    transaction's fenced bookkeeping) would otherwise hold the new leader's writes of the same rows up for good.
    deribit_ts.collector_take_lease matches this name (at most 63 bytes, like the server keeps it)."""
    return f"{APPLICATION} {this_process_id()}"[:63]


class Leadership:
    """The lock connection of one collect process: try to lead, beat, give up."""

    def __init__(self, dsn: str, process_id: str, settings: dict):
        self.dsn = dsn
        self.process_id = process_id
        self.settings = json.dumps(settings, default=str)
        self.conn: AsyncConnection | None = None
        self.leading = False
        self.epoch: int | None = None  # this process's leadership epoch while it leads

    async def __aenter__(self) -> Leadership:
        dsn = psycopg.conninfo.make_conninfo(self.dsn, **_KEEPALIVES)
        self.conn = await connect_async(dsn, application_name=application_name())
        return self

    async def __aexit__(self, *exc) -> None:
        if self.conn is not None:
            await self.conn.close()  # ends the session: the server releases the lock
            self.conn = None
            self.leading = False

    async def try_lead(self) -> bool:
        """Take the lock if it is free, or if its holder's heartbeat is older than the lease; then a new epoch."""
        got = await self._try_lock()
        if not got and await self._holder_is_stale():
            log.warning("the leader's heartbeat is older than %.0f s: taking its leadership over", lease_s())
            await self._query(query("collect", "leader_end_stale"))
            deadline = asyncio.get_running_loop().time() + TERMINATION_WAIT_S
            while not (got := await self._try_lock()) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
        if got:
            self.epoch = (await self._query(query("collect", "leader_take_lease"), {"process_id": self.process_id}))[0]
        self.leading = got
        return got

    def fenced_dsn(self) -> str:
        """The DSN of this leadership's connections: each carries the epoch its writes are checked against."""
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        params["options"] = f"{params.get('options') or ''} -c deribit_ts.leader_epoch={self.epoch}".strip()
        return psycopg.conninfo.make_conninfo(**params)

    async def _try_lock(self) -> bool:
        key1, key2 = LOCK_KEY
        return bool((await self._query(query("collect", "leader_try_lock"), {"key1": key1, "key2": key2}))[0])

    async def _holder_is_stale(self) -> bool:
        row = await self._query(query("collect", "leader_holder_stale"), {"lease_s": lease_s()})
        return bool(row[0])

    async def _query(self, statement: str, params=None) -> tuple:
        cur = await asyncio.wait_for(self.conn.execute(statement, params), BEAT_TIMEOUT_S)
        return await cur.fetchone()

    async def beat(
        self,
        state: str,
        *,
        exchange_now: datetime | None = None,
        run_id: int | None = None,
        error: str | None = None,
        role: str | None = None,
    ) -> None:
        """Write the heartbeat row; raises (psycopg.OperationalError, TimeoutError) when the connection is gone."""
        params = {
            "process_id": self.process_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "role": role or ("leader" if self.leading else "standby"),
            "state": state[:500],
            "exchange_now": exchange_now,
            "run_id": run_id,
            "settings": self.settings,
            "error": error[:1000] if error else None,
        }
        await asyncio.wait_for(self.conn.execute(query("collect", "leader_beat"), params), BEAT_TIMEOUT_S)
        if self.leading and params["role"] == "leader":
            (epoch,) = await self._query(query("collect", "leader_epoch"))
            if epoch != self.epoch:
                self.leading = False
                raise LeadershipLost(f"this collector no longer leads: another took over (epoch {epoch})")

    async def taken_over(self) -> bool:
        """Whether another process took the lease since this one led: a leader that was frozen finds its lock
        session ended by the standby (pg_terminate_backend), which looks like a lost connection until the epoch
        is read on a new one. False when the database cannot say (it is then really unavailable)."""
        if self.epoch is None:
            return False
        try:
            conn = await connect_async(self.dsn, application_name=application_name())
            async with conn:
                cur = await asyncio.wait_for(conn.execute(query("collect", "leader_epoch")), BEAT_TIMEOUT_S)
                row = await cur.fetchone()
        except (psycopg.Error, DatabaseUnavailable, TimeoutError):
            return False
        return row is not None and row[0] != self.epoch

    async def leader_name(self) -> str | None:
        """The process that holds the lock now, as its heartbeat row names it (None if unknown)."""
        cur = await self.conn.execute(query("collect", "leader_name"))
        row = await cur.fetchone()
        return row[0] if row else None
