"""Keeping deribit.sanity_violations' findings: `deribit_ts.refresh_sanity()` (sql/40_quality.sql) judges the candles
written since the last refresh (and the older days whose candles or trades changed since) and stores what breaks a
rule, so the view reads stored rows for everything before the refresh and judges only the newer candles on read.

Called by `deribit-ts refresh` and at the end of every backfill, after the rollups.
"""

from __future__ import annotations

import json
import logging

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.queries import query

log = logging.getLogger(__name__)


def _summary(row) -> dict:
    value = row[0] if row else None
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def refresh(conn: psycopg.Connection, *, full: bool = False) -> dict:
    """Judge and store what changed since the last refresh (every candle with `full`); `conn` in autocommit mode
    (the refresh is its own transaction). Returns the summary: full, checked_until, days_changed, spans,
    violations_stored, seconds."""
    summary = _summary(conn.execute(query("sanity", "refresh"), {"full": full}).fetchone())
    log.debug("refresh_sanity: %s", summary)
    return summary


async def refresh_async(conn: AsyncConnection, *, full: bool = False) -> dict:
    """refresh() on an open asyncio connection."""
    cur = await conn.execute(query("sanity", "refresh"), {"full": full})
    summary = _summary(await cur.fetchone())
    log.debug("refresh_sanity: %s", summary)
    return summary


def describe(summary: dict) -> str:
    days = summary.get("days_changed", 0)
    how = "every candle judged" if summary.get("full") else f"the last day and {days} changed instrument-day(s)"
    return (
        f"sanity findings refreshed ({how}): {summary.get('violations_stored', 0)} violation(s) stored, candles "
        f"before {summary.get('checked_until')} judged, in {summary.get('seconds', 0):.3f} s"
    )
