"""One-minute candles of perpetuals, futures (expired ones too) and options into deribit.candles_1m."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.queries import query
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest.dataset import RangedDataset, Window
from deribit_ts.ingest.load import LoadResult, Table, copy_rows, upsert_rows
from deribit_ts.timeutil import MINUTE_MS, ceil_ms, from_ms

fromtimestamp = datetime.fromtimestamp

CANDLES = Table(
    schema="deribit",
    name="candles_1m",
    columns=("instrument_id", "ts", "open", "high", "low", "close", "volume", "cost"),
    types=("int4", "timestamptz", "float8", "float8", "float8", "float8", "float8", "float8"),
    key=("instrument_id", "ts"),
)

_COLUMNS = ("ticks", "open", "high", "low", "close", "volume", "cost")  # a row: the timestamp, then the values


class Candles(RangedDataset):
    name = "candles"
    step_ms = MINUTE_MS
    # Deribit returns at most ~5,000 candles a request (docs/deribit.md, Endpoints); fetch_exact copes
    # if a server returns fewer.
    window_points = 5000
    # The cap counts buckets from the window's end, so no_data proves a window empty only up to what answers
    # are known to span: 1,000 (ccxt's default page, a safe lower bound) until a wider answer is seen.
    empty_proof_floor = 1000
    # Five full requests a task: small enough that many workers share one instrument's history,
    # large enough that the plan of BTC-PERPETUAL's whole history is ~150 tasks.
    task_span = timedelta(minutes=25_000)
    # Deribit may correct a recent candle after the fact (a late trade, a busted one); candles younger than
    # this at fetch time are fetched again by the next run, and changes are counted as revisions.
    settle = timedelta(minutes=30)

    async def fetch_once(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> list[Sequence]:
        # The chart endpoint includes both ends: ask for the buckets opening in [start, end), i.e. from the
        # first whole minute at or after start to the last whole minute before end (a range that is not on
        # whole minutes must neither lose its last bucket nor send a start after the end).
        first, last = ceil_ms(start_ms, MINUTE_MS), ceil_ms(end_ms, MINUTE_MS) - MINUTE_MS
        if first > last:
            return []
        chart = await client.get_chart(key, first, last, "1")
        ticks = chart.get("ticks") or []
        if chart.get("status") == "no_data" or not ticks:
            return []
        columns = [chart[name] for name in _COLUMNS]
        lengths = {name: len(column) for name, column in zip(_COLUMNS, columns, strict=True)}
        if len(set(lengths.values())) > 1:
            raise UnexpectedReplyError(
                f"get_tradingview_chart_data({key}, {from_ms(first):%Y-%m-%d %H:%M}..{from_ms(last):%Y-%m-%d %H:%M}) "
                f"returned columns of different lengths ({', '.join(f'{k} {n}' for k, n in lengths.items())})"
            )
        return list(zip(*columns, strict=True))

    async def load(self, conn: AsyncConnection, key_id: int, window: Window) -> LoadResult:
        if not window.rows:
            return LoadResult()
        # fromtimestamp is twice as fast as EPOCH + timedelta on this hot path (5,000 rows a window).
        rows = [(key_id, fromtimestamp(r[0] / 1000, UTC), *r[1:]) for r in window.rows]
        first, last = rows[0][1], rows[-1][1]
        # An index probe: does this instrument already have a row in the window? Only then is an upsert needed.
        cur = await conn.execute(
            query("candles", "any_row"),
            {"instrument_id": key_id, "start": first, "end": last + timedelta(minutes=1)},
        )
        overlap = (await cur.fetchone())[0]
        if not overlap:
            try:
                async with conn.transaction():  # a savepoint: a racing writer only costs this attempt
                    await copy_rows(conn, CANDLES, rows)
                return LoadResult(inserted=len(rows))
            except psycopg.errors.UniqueViolation:
                pass  # someone else wrote rows here since the probe: merge instead
        return await upsert_rows(conn, CANDLES, rows)


DATASET = Candles()
