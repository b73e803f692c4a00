"""Refreshing the continuous aggregates over loaded history (Community edition only).

The refresh policies of 0006_rollups_continuous.sql only look at the last few days; older history a
backfill loads is refreshed here. A run that is killed or interrupted never gets to its own refresh, so
each refresh covers every candle range loaded and not yet rolled up (`deribit_ts.coverage.rolled_up_at`,
0008_coverage_rollups.sql), whichever run loaded it, and marks those ranges afterwards.
`refresh_continuous_aggregate` cannot run inside a transaction: this needs an autocommit connection.
Where the rollups are plain views (Apache edition) there is nothing to refresh and nothing is marked, so a
server that later gains the Community license refreshes that history on its first run.
"""

from __future__ import annotations

import logging
from datetime import datetime

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

# Lower layers first: candles_1d is built from candles_1h.
ROLLUPS = (("candles_1h", "1 hour"), ("candles_1d", "1 day"))
# Ranges are widened to whole buckets of the coarsest rollup: a refresh only recomputes buckets that lie
# entirely inside its window, and widened ranges that touch merge into one refresh.
WIDEST_BUCKET = ROLLUPS[-1][1]

# The coverage rows this refresh covers, read BEFORE refreshing (their candles were committed with them):
# only these are marked afterwards, so a range loaded while the refresh ran stays pending. A session temp
# table rather than a list sent back and forth: the first refresh after an upgrade may cover years of rows.
_COLLECT_PENDING = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_pending (coverage_id bigint PRIMARY KEY, fetched tstzrange NOT NULL)",
    "TRUNCATE rollup_pending",
    """INSERT INTO rollup_pending (coverage_id, fetched)
       SELECT coverage_id, fetched FROM deribit_ts.coverage
        WHERE dataset = 'candles' AND rows > 0 AND rolled_up_at IS NULL""",
)
_MERGED_RANGES = """
    WITH widened AS (
        SELECT time_bucket(%(bucket)s::interval, lower(fetched)) AS start,
               -- upper(fetched) is exclusive: the last bucket is the one holding the instant before it
               time_bucket(%(bucket)s::interval, upper(fetched) - interval '1 microsecond')
                   + %(bucket)s::interval AS stop
          FROM rollup_pending)
    SELECT lower(r), upper(r)
      FROM unnest((SELECT range_agg(tstzrange(start, stop)) FROM widened)) AS r
     ORDER BY 1"""
_MARK_ROLLED_UP = """
    UPDATE deribit_ts.coverage c SET rolled_up_at = now()
      FROM rollup_pending p
     WHERE c.coverage_id = p.coverage_id AND c.rolled_up_at IS NULL"""


async def continuous_rollups(conn: AsyncConnection) -> list[str]:
    """The rollups that are continuous aggregates in this database, lower layers first (none on Apache)."""
    cur = await conn.execute(
        """SELECT view_name FROM timescaledb_information.continuous_aggregates
            WHERE view_schema = 'deribit' AND view_name = ANY(%s)""", ([name for name, _ in ROLLUPS],))
    present = {name for (name,) in await cur.fetchall()}
    return [name for name, _ in ROLLUPS if name in present]


async def pending_ranges(conn: AsyncConnection) -> list[tuple[datetime, datetime]]:
    """Collect the candle coverage not yet rolled up; return it merged into day-aligned ranges."""
    for statement in _COLLECT_PENDING:
        await conn.execute(statement)
    cur = await conn.execute(_MERGED_RANGES, {"bucket": WIDEST_BUCKET})
    return await cur.fetchall()


async def refresh_after_run(conn: AsyncConnection, run_id: int) -> list[str]:
    """Refresh every rollup over all candles loaded and not yet rolled up (by run `run_id` or by an earlier
    run that never got to refresh), then mark them; returns the rollups refreshed."""
    views = await continuous_rollups(conn)
    if not views:
        return []
    ranges = await pending_ranges(conn)
    for view in views:
        for start, end in ranges:
            await conn.execute(
                "CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz, %s::timestamptz)",
                (f"deribit.{view}", start, end))
    await conn.execute(_MARK_ROLLED_UP)
    await conn.execute("DROP TABLE rollup_pending")
    if not ranges:
        return []
    log.info("run %s: refreshed %s over %d range(s) from %s to %s",
             run_id, ", ".join(views), len(ranges), ranges[0][0], ranges[-1][1])
    return [f"deribit.{view}" for view in views]
