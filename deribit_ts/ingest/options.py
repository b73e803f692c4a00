"""Option candles: every option, active and expired, by urgency tier; filler candles kept out of the table.

Tiers (deribit_ts.option_tier in sql/20_backfill.sql): `critical` = expired or expiring within 7 days, `high`
7-30 days, `medium` 30-90, `low` beyond. The plan gives each tier its priority and every task its instrument's
expiry as `due`, so workers take critical first and, within a tier, the soonest expiry first.

Fillers: options trade rarely, and the chart endpoint answers every untraded minute with a zero-volume candle at
the last close. Stored as rows they are ~97% of an option's candles and ~50x the bytes of its traded ones
(README "Option candles and fillers", measured by scripts/bench_options.py). So an option's window stores only
its traded candles; the filler minutes are recorded, as ranges, in the window's coverage row
(deribit_ts.coverage.filled), which keeps "filler", "exchange had nothing" and "never fetched" apart and lets a
filler be rebuilt exactly (the last traded close). A stored candle whose minute the exchange now answers as a
filler (a busted trade) is deleted, so deribit.ohlcv_1m never shows a traded candle the exchange does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from deribit_ts.db.queries import query
from deribit_ts.ingest.candles import Candles
from deribit_ts.ingest.dataset import Window
from deribit_ts.ingest.load import LoadResult
from deribit_ts.timeutil import MINUTE_MS

TIERS = ("critical", "high", "medium", "low")

# BTC-27SEP24-40000-C, XRP_USDC-30JUN23-0d625-C (docs/deribit.md); combos (BTC-CS-...) are not options here.
_OPTION_NAME = re.compile(r"^[A-Z0-9_]+-\d{1,2}[A-Z]{3}\d{2}-[0-9d.]+-[CP]$")


def is_option(name: str) -> bool:
    return bool(_OPTION_NAME.match(name))


def is_filler(row: Sequence) -> bool:
    """A zero-volume candle at one price: what the chart endpoint sends for a minute without trades."""
    _, o, h, low, c, volume, cost = row
    return volume == 0 and cost == 0 and o == h == low == c


def filler_runs(ticks: list[int]) -> list[tuple[datetime, datetime]]:
    """[from, until) runs of consecutive minutes."""
    runs: list[list[int]] = []
    for t in ticks:
        if runs and runs[-1][1] == t:
            runs[-1][1] = t + MINUTE_MS
        else:
            runs.append([t, t + MINUTE_MS])
    return [(datetime.fromtimestamp(a / 1000, UTC), datetime.fromtimestamp(b / 1000, UTC)) for a, b in runs]


class OptionCandles(Candles):
    """Candles of one option: the traded ones are stored, the fillers recorded as covered minutes."""

    async def load(self, conn: AsyncConnection, key_id: int, window: Window) -> LoadResult:
        traded, filler_ticks = [], []
        for row in window.rows:  # one pass: ~97% of an option's rows are fillers
            if is_filler(row):
                filler_ticks.append(row[0])
            else:
                traded.append(row)
        result = await super().load(conn, key_id, replace(window, rows=traded)) if traded else LoadResult()
        if filler_ticks:
            lo = datetime.fromtimestamp(filler_ticks[0] / 1000, UTC)
            hi = datetime.fromtimestamp(filler_ticks[-1] / 1000, UTC) + timedelta(minutes=1)
            stamps = [datetime.fromtimestamp(t / 1000, UTC) for t in filler_ticks]
            cur = await conn.execute(
                query("candles", "delete_filled"),
                {"instrument_id": key_id, "start": lo, "end": hi, "minutes": stamps},
            )
            result.revised += cur.rowcount  # a traded candle the exchange no longer has
        result.filled = filler_runs(filler_ticks)
        result.rows = len(traded)  # coverage counts the rows stored (deribit.coverage.rows = count(*))
        return result


OPTION_CANDLES = OptionCandles()


async def tier_plan(
    conn: AsyncConnection, keys: list[str], now: datetime, dataset: str = "candles", window_ms: int | None = None
) -> dict[str, dict]:
    """Per tier: options with work planned (of `dataset`), their open tasks, and the requests those take at least
    (one per window of `window_ms`, default the option candles')."""
    window_s = (window_ms or OPTION_CANDLES.window_ms) / 1000
    cur = await conn.execute(
        query("candles", "tier_plan"), {"now": now, "keys": keys, "window_s": window_s, "dataset": dataset}
    )
    found = {tier: (options, tasks, requests) for tier, options, tasks, requests in await cur.fetchall()}
    return {
        tier: dict(zip(("options", "tasks", "requests"), found.get(tier, (0, 0, 0)), strict=True)) for tier in TIERS
    }
