"""The run log (deribit_ts.runs): one row per invocation that does work, from its start to its end.

    async with RunLog(conn, "backfill candles", arguments, client) as run:
        ... run.run_id ...
        run.status, run.error = "failed", "2 task(s) failed"   # or leave them: the way the block ends decides

On entry the row is written (status 'running'); while the block runs the client's exchange traffic is written to
it every TRAFFIC_LOG_S, so a run that is killed (kill -9, a lost host) still shows what it sent; on exit the row
is closed with the final traffic and a status: the one the block set, else 'interrupted' for a cancelled block
(Ctrl-C, SIGTERM), `error_status` for one that raised (the error's first line), 'ok' otherwise. A database that
fails while closing leaves the row 'running': the next run on this host marks it interrupted
(tasks.recover_dead_local_workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import psycopg
from psycopg import AsyncConnection

from deribit_ts.config import mask_password
from deribit_ts.db.queries import query
from deribit_ts.ingest import tasks

TRAFFIC_LOG_S = 2.0


def _traffic(stats) -> dict[str, int]:
    return {
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "errors": sum(stats.errors.values()),
    }


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


class RunLog:
    """One run's row in deribit_ts.runs, opened and closed around a block (see the module's docstring)."""

    def __init__(
        self,
        conn: AsyncConnection,
        command: str,
        arguments: dict,
        client,
        *,
        error_status: str = "failed",
        log_traffic: bool = True,
    ):
        self.conn = conn
        self.command = command
        self.arguments = arguments
        self.client = client  # its .stats: the exchange traffic of the run
        self.error_status = error_status
        self.log_traffic = log_traffic
        self.run_id: int | None = None
        self.status: str | None = None  # set by the block to override how its end is read
        self.error: str | None = None
        self._stop = asyncio.Event()
        self._traffic_task: asyncio.Task | None = None

    async def __aenter__(self) -> RunLog:
        cur = await self.conn.execute(
            query("runlog", "start"),
            {
                "command": self.command,
                "arguments": json.dumps(self.arguments, default=str),
                "host": tasks.HOST,
                "pid": os.getpid(),
            },
        )
        self.run_id = (await cur.fetchone())[0]
        if self.log_traffic:
            self._traffic_task = asyncio.create_task(self._keep_logging_traffic())
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._traffic_task is not None:
            await asyncio.gather(self._traffic_task, return_exceptions=True)
        if self.status is None:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt | asyncio.CancelledError):
                self.status, self.error = "interrupted", "interrupted"
            elif exc is not None:
                self.status, self.error = self.error_status, self.error or first_line(exc)
            else:
                self.status = "ok"
        try:
            await self.conn.execute(
                query("runlog", "finish"),
                {
                    "status": self.status,
                    "error": mask_password(self.error),
                    **_traffic(self.client.stats),
                    "run_id": self.run_id,
                },
            )
        except (psycopg.Error, TimeoutError):
            pass  # the row stays 'running'; the next run on this host marks it interrupted

    async def _keep_logging_traffic(self) -> None:
        # Stopped by an event, not cancelled: a cancelled query could leave the run's own connection unusable.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TRAFFIC_LOG_S)
                return
            with contextlib.suppress(psycopg.Error):  # the run's own work reports a lost database
                await self.conn.execute(
                    query("runlog", "traffic"), {**_traffic(self.client.stats), "run_id": self.run_id}
                )
