"""Bringing the rollups (deribit.ohlcv_5m/15m/1h/1d) up to date, on either edition.

The work is SQL: `CALL deribit_ts.refresh_rollups()` (sql/30_rollups.sql). On the Apache edition it recomputes
the days whose one-minute candles changed (marked by a trigger in the writer's transaction, migration 0009); on
the Community edition it refreshes the continuous aggregates, which recompute only what Timescale's invalidation
log says changed. Either way, what a killed or interrupted run loaded is included: the marks and the
invalidations were committed with its candles.

This module is the Python entry point for the CLI (`deribit-ts refresh`), the backfill (while it fetches and
after every run) and the collector: `refresh(conn_or_dsn)`, or `refresh_async(aconn)` from asyncio code. The
connection must not be inside a transaction (the Community edition's refresh commits as it goes): an autocommit
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.connect import connect, connect_async
from deribit_ts.db.queries import query
from deribit_ts.errors import UserError

log = logging.getLogger(__name__)

ROLLUPS = ("deribit.candles_5m", "deribit.candles_15m", "deribit.candles_1h", "deribit.candles_1d")
# While a backfill fetches, the rollups are refreshed this long after the previous refresh ended: the refresh at
# the run's end then has only the last seconds' candles left, instead of everything the run wrote.
MEANWHILE_PAUSE_S = 1.0


def _summary(row) -> dict:
    value = row[0] if row else None
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def refresh(conn_or_dsn: psycopg.Connection | str, *, full: bool = False) -> dict:
    """Bring every rollup up to date; return the summary (edition, rollups refreshed, days, rows, seconds).

    `conn_or_dsn`: a DSN, or an open connection in autocommit mode. `full` (Apache): rebuild every rollup from
    the one-minute rows instead of only the days that changed."""
    if isinstance(conn_or_dsn, str):
        with connect(conn_or_dsn, autocommit=True, application_name="deribit-ts refresh") as conn:
            return refresh(conn, full=full)
    conn = conn_or_dsn
    if not conn.autocommit:
        raise ValueError("rollups.refresh needs an autocommit connection (the Community refresh commits as it goes)")
    summary = _summary(conn.execute(query("rollups", "refresh"), {"full": full}).fetchone())
    _log(summary)
    return summary


async def refresh_async(conn: AsyncConnection, *, full: bool = False) -> dict:
    """refresh() for asyncio code, on an open autocommit AsyncConnection."""
    if not conn.autocommit:
        raise ValueError("rollups.refresh_async needs an autocommit connection")
    cur = await conn.execute(query("rollups", "refresh"), {"full": full})
    summary = _summary(await cur.fetchone())
    _log(summary)
    return summary


@dataclass
class Meanwhile:
    """What the refreshes overlapped with a run's fetching did: how many, their seconds in all, days recomputed."""

    refreshes: int = 0
    seconds: float = 0.0
    days: int = 0

    def as_dict(self) -> dict:
        return {"refreshes": self.refreshes, "seconds": round(self.seconds, 3), "days": self.days}


@contextlib.asynccontextmanager
async def refreshing_meanwhile(dsn: str, pause_s: float = MEANWHILE_PAUSE_S) -> AsyncIterator[Meanwhile]:
    """Refresh the rollups on a connection of their own, again and again (`pause_s` after each), while the body
    runs: a backfill's fetching waits on the exchange's allowance, the refresh uses the database meanwhile.
    Leaving the body lets a refresh under way finish (its work is not wasted) and stops there. A failed
    refresh ends the loop, logged at info level only (the run's own error, if the database is gone, is the one
    line a user needs): the refresh at the run's end covers whatever it left."""
    done = Meanwhile()
    stop = asyncio.Event()

    async def loop() -> None:
        try:
            async with await connect_async(dsn, autocommit=True, application_name="deribit-ts refresh") as conn:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause_s)
                    if stop.is_set():
                        return
                    began = time.monotonic()
                    summary = await refresh_async(conn)
                    done.refreshes += 1
                    done.seconds += time.monotonic() - began
                    done.days += summary.get("days") or 0
        except (psycopg.Error, UserError) as exc:
            log.info("refreshing the rollups while fetching stopped: %s", " ".join(str(exc).split()))

    task = asyncio.create_task(loop())
    try:
        yield done
    except BaseException:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, psycopg.Error, UserError):
            await task
        raise
    stop.set()
    await task


async def refresh_after_run(conn: AsyncConnection, run_id: int, meanwhile: Meanwhile | None = None) -> list[str]:
    """The backfill's refresh at the end of run `run_id`: every rollup over everything written and not yet rolled
    up (by this run, by an earlier one that never got to refresh, or since the last refresh `meanwhile`).
    Returns the rollups refreshed, by this refresh or by those meanwhile."""
    summary = await refresh_async(conn)
    if summary.get("rollups"):
        log.info(
            "run %s: rollups refreshed in %.3f s (%s day(s) recomputed)",
            run_id,
            summary.get("seconds", 0),
            summary.get("days") if summary.get("days") is not None else "invalidated",
        )
    refreshed = list(summary.get("rollups") or [])
    if not refreshed and meanwhile is not None and meanwhile.days:
        refreshed = list(ROLLUPS)
    return refreshed


def _log(summary: dict) -> None:
    log.debug("refresh_rollups: %s", summary)
