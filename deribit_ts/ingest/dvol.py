"""DVOL, Deribit's implied volatility index, at one-minute resolution into deribit.volatility_index.

public/get_volatility_index_data answers at most a page of candles (how many is unconfirmed) and a `continuation`
to send as the next request's end_timestamp (docs/deribit.md, Endpoints): one window is walked backwards page by page
until the continuation is null or leaves the window. fetch_exact then checks both edges like any other dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest.dataset import RangedDataset, Window
from deribit_ts.ingest.load import LoadResult, Table, upsert_rows
from deribit_ts.timeutil import MINUTE_MS, from_ms

VOLATILITY_INDEX = Table(
    schema="deribit",
    name="volatility_index",
    columns=("currency", "ts", "open", "high", "low", "close"),
    types=("text", "timestamptz", "float8", "float8", "float8", "float8"),
    key=("currency", "ts"),
)

# DVOL starts in March 2021 (docs/deribit.md, Endpoints); a plan without --since starts shortly before, so the walk does
# not spend a request per week on the years before it existed.
HISTORY_START = datetime(2021, 1, 1, tzinfo=UTC)
RESOLUTION = "60"  # seconds: one-minute candles
MAX_PAGES = 10_000  # a continuation that never ends is the exchange's bug, not a reason to loop forever


class Dvol(RangedDataset):
    name = "dvol"
    step_ms = MINUTE_MS
    # One window is a week; the exchange's page cap is its own business (continuation walks it).
    window_points = 7 * 1440
    task_span = timedelta(days=91)
    settle = timedelta(minutes=5)  # the newest minute may still be forming when fetched
    keyed_by_instrument = False

    async def fetch_once(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> list[Sequence]:
        rows: list[Sequence] = []
        end = end_ms - 1  # end_timestamp is inclusive: rows with start <= ts < end_ms
        for _ in range(MAX_PAGES):
            reply = await client.call(
                "get_volatility_index_data",
                {
                    "currency": key,
                    "start_timestamp": int(start_ms),
                    "end_timestamp": int(end),
                    "resolution": RESOLUTION,
                },
            )
            rows.extend((int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in reply["data"])
            continuation = reply.get("continuation")
            if continuation is None or not start_ms <= int(continuation) < end:
                return rows
            end = int(continuation)
        raise UnexpectedReplyError(
            f"get_volatility_index_data({key}) from {from_ms(start_ms):%Y-%m-%d %H:%M}: "
            f"continuation still set after {MAX_PAGES} pages"
        )

    async def load(self, conn: AsyncConnection, key_id, window: Window) -> LoadResult:
        rows = [(window.key, from_ms(r[0]), *r[1:]) for r in window.rows]
        return await upsert_rows(conn, VOLATILITY_INDEX, rows)


DATASET = Dvol()
