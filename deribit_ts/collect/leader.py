"""Leadership and heartbeat: one PostgreSQL session advisory lock, held on a connection of its own.

Any number of `deribit-ts collect` processes may run against one database. Each opens a dedicated connection
and tries `pg_try_advisory_lock` every couple of seconds; the one that gets it leads, the others stand by. The
lock belongs to that session, so it is released by the server the moment the leader's process dies or its
connection is lost (TCP keepalives bound how long a silent network failure can hide that), and a standby takes
over at its next try. No lease table, no clock comparisons: PostgreSQL is the referee.

The same connection writes the process's heartbeat row (deribit_ts.collector_processes) every few seconds, so a
leader whose connection died finds out at its next beat and stops leading.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from datetime import datetime

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.connect import connect_async

APPLICATION = "deribit-ts collect"
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

_UPSERT_BEAT = """
INSERT INTO deribit_ts.collector_processes AS p
       (process_id, host, pid, backend_pid, role, state, leader_since, exchange_now, run_id, settings,
        last_error, last_error_at)
VALUES (%(process_id)s, %(host)s, %(pid)s, pg_backend_pid(), %(role)s::text, %(state)s,
        CASE WHEN %(role)s::text = 'leader' THEN now() END, %(exchange_now)s::timestamptz, %(run_id)s::bigint,
        %(settings)s::jsonb, %(error)s::text, CASE WHEN %(error)s::text IS NOT NULL THEN now() END)
ON CONFLICT (process_id) DO UPDATE SET
       backend_pid = EXCLUDED.backend_pid, role = EXCLUDED.role, state = EXCLUDED.state, beat_at = now(),
       leader_since = CASE WHEN EXCLUDED.role <> 'leader' THEN NULL
                           ELSE coalesce(p.leader_since, now()) END,
       exchange_now = coalesce(EXCLUDED.exchange_now, p.exchange_now), run_id = EXCLUDED.run_id,
       settings = EXCLUDED.settings,
       last_error = coalesce(EXCLUDED.last_error, p.last_error),
       last_error_at = coalesce(EXCLUDED.last_error_at, p.last_error_at)
"""


def new_process_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{int(time.time())}"


class Leadership:
    """The lock connection of one collect process: try to lead, beat, give up."""

    def __init__(self, dsn: str, process_id: str, settings: dict):
        self.dsn = dsn
        self.process_id = process_id
        self.settings = json.dumps(settings, default=str)
        self.conn: AsyncConnection | None = None
        self.leading = False

    async def __aenter__(self) -> Leadership:
        dsn = psycopg.conninfo.make_conninfo(self.dsn, **_KEEPALIVES)
        self.conn = await connect_async(dsn, application_name=APPLICATION)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.conn is not None:
            await self.conn.close()  # ends the session: the server releases the lock
            self.conn = None
            self.leading = False

    async def try_lead(self) -> bool:
        cur = await asyncio.wait_for(self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY), BEAT_TIMEOUT_S)
        self.leading = bool((await cur.fetchone())[0])
        return self.leading

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
        await asyncio.wait_for(self.conn.execute(_UPSERT_BEAT, params), BEAT_TIMEOUT_S)

    async def leader_name(self) -> str | None:
        """The process that holds the lock now, as its heartbeat row names it (None if unknown)."""
        cur = await self.conn.execute(
            "SELECT process_id FROM deribit_ts.collector_status WHERE holds_lock ORDER BY beat_at DESC LIMIT 1"
        )
        row = await cur.fetchone()
        return row[0] if row else None
