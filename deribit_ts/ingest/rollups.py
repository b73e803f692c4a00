"""Refreshing the continuous aggregates over what a backfill loaded (Community edition only).

The refresh policies of 0006_rollups_continuous.sql only look at the last few days; history loaded by a
backfill is refreshed here, over exactly the span the run fetched. `refresh_continuous_aggregate` cannot
run inside a transaction, so this needs an autocommit connection. On the Apache edition the rollups are
plain views and there is nothing to do.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection

# Lower layers first: candles_1d is built from candles_1h.
ROLLUPS = (("deribit.candles_1h", "1 hour"), ("deribit.candles_1d", "1 day"))


async def loaded_span(conn: AsyncConnection, run_id: int) -> tuple[datetime, datetime] | None:
    cur = await conn.execute(
        """SELECT min(lower(fetched)), max(upper(fetched)) FROM deribit_ts.coverage
            WHERE run_id = %s AND dataset = 'candles' AND rows > 0""", (run_id,))
    lo, hi = await cur.fetchone()
    return None if lo is None else (lo, hi)


async def refresh_after_run(conn: AsyncConnection, run_id: int) -> list[str]:
    """Refresh every rollup over the run's candles; returns the rollups refreshed."""
    cur = await conn.execute("SELECT current_setting('timescaledb.license', true) = 'timescale'")
    if not (await cur.fetchone())[0]:
        return []
    span = await loaded_span(conn, run_id)
    if span is None:
        return []
    refreshed = []
    for view, bucket in ROLLUPS:
        # Widen to whole buckets: a refresh only recomputes buckets that lie entirely inside its window.
        await conn.execute(
            """CALL refresh_continuous_aggregate(%s::regclass,
                   time_bucket(%s::interval, %s::timestamptz),
                   time_bucket(%s::interval, %s::timestamptz) + %s::interval)""",
            (view, bucket, span[0], bucket, span[1], bucket))
        refreshed.append(view)
    return refreshed
