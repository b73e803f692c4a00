"""What the collector's jobs want fetched, planned as backfill tasks (the SQL is in sql/70_collector.sql).

Each plan asks for everything between a key's watermark and the exchange's latest closed step; plan_tasks
subtracts what coverage already holds as final, so after an outage of any length the same call plans the whole
gap. The newest part of each key's want is planned at a fresh priority, anything older (a gap, a new listing's
history) at the catch-up priority, so the newest minute is always fetched first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg import AsyncConnection

from deribit_ts.collect.budget import CATCH_UP, FRESH, FUNDING, OPTIONS
from deribit_ts.db.queries import query
from deribit_ts.ingest import candles, funding, index, tasks

# How long after its expiry an instrument is still planned: the settling time of its last candles and a margin.
KEEP_AFTER_EXPIRY = candles.DATASET.settle + timedelta(minutes=10)
# A full check (from the origin, not only from the watermarks) also looks at instruments expired this recently.
FULL_KEEP_AFTER_EXPIRY = timedelta(days=2)
FRESH_SPAN = candles.DATASET.settle + timedelta(minutes=2)  # the part of a want planned at the fresh priority


@dataclass
class Planned:
    keys: list[str] = field(default_factory=list)
    new_tasks: int = 0


async def _plan_split(
    conn: AsyncConnection,
    dataset: str,
    key: str,
    start: datetime,
    end: datetime,
    span: timedelta,
    fresh_from: datetime,
    fresh_priority: int,
) -> int:
    """Plan [start, end): the part from fresh_from at the fresh priority, the older part as catch-up."""
    if start >= end:
        return 0
    cut = min(max(start, fresh_from), end)
    n = await tasks.plan(conn, dataset, key, cut, end, span, fresh_priority)
    return n + await tasks.plan(conn, dataset, key, start, cut, span, CATCH_UP)


async def retry_failed(conn: AsyncConnection, dataset: str) -> int:
    """Failed collector tasks are tried again by the next plan: a range that failed while later ones succeeded lies
    behind the watermark, where the regular plan no longer looks (each failure is counted in collector_jobs)."""
    cur = await conn.execute(query("collect", "retry_failed"), {"dataset": dataset})
    return cur.rowcount


async def plan_candles(
    conn: AsyncConnection, now: datetime, origin: datetime, full: bool, currencies: list[str], kinds: list[str]
) -> Planned:
    out = Planned()
    if not {"perpetual", "future"} & set(kinds):
        return out
    cur = await conn.execute(
        query("collect", "candle_wants"),
        {
            "now": now,
            "origin": origin,
            "full": full,
            "currencies": currencies,
            "perpetual": "perpetual" in kinds,
            "future": "future" in kinds,
            "settle": candles.DATASET.settle,
            "keep_after_expiry": FULL_KEEP_AFTER_EXPIRY if full else KEEP_AFTER_EXPIRY,
        },
    )
    fresh_from = now.replace(second=0, microsecond=0) - FRESH_SPAN
    for name, start, end, _perpetual in await cur.fetchall():
        out.keys.append(name)
        out.new_tasks += await _plan_split(
            conn, "candles", name, start, end, candles.DATASET.task_span, fresh_from, FRESH
        )
    return out


async def plan_options(
    conn: AsyncConnection, now: datetime, origin: datetime, names: list[str], trail: timedelta, fresh_from: datetime
) -> Planned:
    """Candles of the options that traded, each from `trail` before its watermark (collect/options.py); from
    `fresh_from` at the options' priority, anything older as catch-up."""
    out = Planned()
    if not names:
        return out
    cur = await conn.execute(
        query("collect", "option_wants"), {"now": now, "origin": origin, "names": names, "trail": trail}
    )
    for name, start, end in await cur.fetchall():
        out.keys.append(name)
        out.new_tasks += await _plan_split(
            conn, "candles", name, start, end, candles.DATASET.task_span, fresh_from, OPTIONS
        )
    return out


async def plan_option_gap(conn: AsyncConnection, names: list[str], start: datetime, end: datetime) -> Planned:
    """Candles of the options listed in [start, end), a gap beyond the reach of the scan that names the options
    that traded (after an outage of more than a day): each option's whole gap, as catch-up. An option that did not
    trade costs its chart requests (one per window) instead of being left out."""
    out = Planned()
    for name in names:
        out.keys.append(name)
        out.new_tasks += await tasks.plan(conn, "candles", name, start, end, candles.DATASET.task_span, CATCH_UP)
    return out


async def plan_funding(
    conn: AsyncConnection, now: datetime, origin: datetime, full: bool, currencies: list[str]
) -> Planned:
    out = Planned()
    cur = await conn.execute(
        query("collect", "funding_wants"), {"now": now, "origin": origin, "full": full, "currencies": currencies}
    )
    fresh_from = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    for name, start, end in await cur.fetchall():
        out.keys.append(name)
        out.new_tasks += await _plan_split(
            conn, "funding", name, start, end, funding.DATASET.task_span, fresh_from, FUNDING
        )
    return out


async def plan_index(conn: AsyncConnection, now: datetime, origin: datetime, full: bool, indexes: list[str]) -> Planned:
    """One task per index and gap: the index endpoint answers whole ranges back from now, not windows."""
    out = Planned()
    cur = await conn.execute(
        query("collect", "index_wants"), {"now": now, "origin": origin, "full": full, "indexes": indexes}
    )
    for name, start, end in await cur.fetchall():
        out.keys.append(name)
        if start < end:
            out.new_tasks += await tasks.plan(conn, "index", name, start, end, index.DATASET.task_span, FRESH)
    return out


async def plan_series(
    conn: AsyncConnection,
    dataset: str,
    now: datetime,
    origin: datetime,
    full: bool,
    keys: list[str],
    settle: timedelta,
    span: timedelta,
    priority: int,
) -> Planned:
    """DVOL (keyed by currency) and delivery prices (keyed by index name)."""
    out = Planned()
    cur = await conn.execute(
        query("collect", "series_wants"),
        {"dataset": dataset, "now": now, "origin": origin, "full": full, "keys": keys, "settle": settle},
    )
    for key, start, end in await cur.fetchall():
        out.keys.append(key)
        if start < end:
            out.new_tasks += await tasks.plan(conn, dataset, key, start, end, span, priority)
    return out


async def ensure_origin(conn: AsyncConnection, since: datetime | None, now: datetime) -> datetime:
    """The collector's origin: set on the first start (now, or --since); an earlier --since moves it back."""
    start = since or now.replace(second=0, microsecond=0)
    cur = await conn.execute(query("collect", "ensure_origin"), {"start": start, "moved": since is not None})
    return (await cur.fetchone())[0]


async def record_job(
    conn: AsyncConnection, job: str, exchange_now: datetime | None, error: str | None = None, errors: int = 0
) -> None:
    """One run of a job (error None: it succeeded), or `errors` failures of its tasks (exchange_now None)."""
    if exchange_now is None:
        await conn.execute(query("collect", "job_errors"), {"job": job, "errors": errors, "error": error})
        return
    await conn.execute(
        query("collect", "job_run"),
        {"job": job, "failed": error is not None, "now": exchange_now, "error": error},
    )
