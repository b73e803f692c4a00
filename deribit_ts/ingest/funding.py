"""Hourly funding history of perpetuals into deribit.funding_rate_history.

Paged directly in 30-day windows: ccxt's own funding pagination has been reported by its users to lose rows,
and the endpoint's per-request cap (744 rows per ccxt) is unconfirmed,
so windows stay below it and fetch_exact verifies both edges anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from psycopg import AsyncConnection

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.ingest.dataset import RangedDataset, Window
from deribit_ts.ingest.load import LoadResult, Table, upsert_rows
from deribit_ts.timeutil import HOUR_MS, from_ms

FUNDING = Table(
    schema="deribit",
    name="funding_rate_history",
    columns=("instrument_id", "ts", "interest_1h", "interest_8h", "index_price", "prev_index_price"),
    types=("int4", "timestamptz", "float8", "float8", "float8", "float8"),
    key=("instrument_id", "ts"),
)


class Funding(RangedDataset):
    name = "funding"
    step_ms = HOUR_MS
    window_points = 720  # 30 days of hourly rows
    task_span = timedelta(days=360)

    async def fetch_once(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> list[Sequence]:
        # The endpoint's start is exclusive and its end inclusive (the spec's example): shift both by 1 ms
        # to get the rows with start <= timestamp < end.
        rows = await client.get_funding_rate_history(key, start_ms - 1, end_ms - 1)
        return [
            (
                r["timestamp"],
                r.get("interest_1h"),
                r.get("interest_8h"),
                r.get("index_price"),
                r.get("prev_index_price"),
            )
            for r in rows
        ]

    async def load(self, conn: AsyncConnection, key_id: int, window: Window) -> LoadResult:
        rows = [(key_id, from_ms(r[0]), *r[1:]) for r in window.rows]
        return await upsert_rows(conn, FUNDING, rows)


DATASET = Funding()
