"""Bringing the rollups (deribit.ohlcv_5m/15m/1h/1d) up to date, on either edition.

The work is SQL: `CALL deribit_ts.refresh_rollups()` (sql/30_rollups.sql). On the Apache edition it recomputes
the days whose one-minute candles changed (marked by a trigger in the writer's transaction, migration 0009); on
the Community edition it refreshes the continuous aggregates, which recompute only what Timescale's invalidation
log says changed. Either way, what a killed or interrupted run loaded is included: the marks and the
invalidations were committed with its candles.

This module is the Python entry point for the CLI (`deribit-ts refresh`), the backfill (after every run) and
the collector: `refresh(conn_or_dsn)`, or `refresh_async(aconn)` from asyncio code. The connection must not
be inside a transaction (the Community edition's refresh commits as it goes): an autocommit connection.
"""

from __future__ import annotations

import json
import logging

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.connect import connect

log = logging.getLogger(__name__)

ROLLUPS = ("deribit.candles_5m", "deribit.candles_15m", "deribit.candles_1h", "deribit.candles_1d")
_REFRESH = "CALL deribit_ts.refresh_rollups(%s, NULL)"


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
    summary = _summary(conn.execute(_REFRESH, (full,)).fetchone())
    _log(summary)
    return summary


async def refresh_async(conn: AsyncConnection, *, full: bool = False) -> dict:
    """refresh() for asyncio code, on an open autocommit AsyncConnection."""
    if not conn.autocommit:
        raise ValueError("rollups.refresh_async needs an autocommit connection")
    cur = await conn.execute(_REFRESH, (full,))
    summary = _summary(await cur.fetchone())
    _log(summary)
    return summary


async def refresh_after_run(conn: AsyncConnection, run_id: int) -> list[str]:
    """The backfill's refresh at the end of run `run_id`: every rollup over everything written and not yet rolled
    up (by this run or by an earlier one that never got to refresh). Returns the rollups refreshed."""
    summary = await refresh_async(conn)
    if summary.get("rollups"):
        log.info(
            "run %s: rollups refreshed in %.3f s (%s day(s) recomputed)",
            run_id,
            summary.get("seconds", 0),
            summary.get("days") if summary.get("days") is not None else "invalidated",
        )
    return list(summary.get("rollups") or [])


def _log(summary: dict) -> None:
    log.debug("refresh_rollups: %s", summary)
