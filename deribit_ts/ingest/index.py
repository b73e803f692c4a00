"""Index price history (btc_usd, eth_usd, ...) into deribit.index_price_history.

public/get_index_chart_data has no time parameters, only a `range` that ends now: `1h`, `1d`, `2d`,
`1m`, `1y` or `all`, each sampled at its own resolution (finer for shorter ranges; the exact resolutions
are unconfirmed, so each response's spacing is measured). To cover a period at the finest resolution the
API offers, every range that reaches into it is fetched, finest first, until one reaches its start; each
row records the resolution of its series, and a finer sample is never overwritten by a coarser one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

from psycopg import AsyncConnection

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest.dataset import WholeDataset
from deribit_ts.ingest.load import LoadResult, Table, upsert_rows
from deribit_ts.timeutil import from_ms, to_ms

RANGES = (
    ("1h", timedelta(hours=1)),
    ("1d", timedelta(days=1)),
    ("2d", timedelta(days=2)),
    ("1m", timedelta(days=30)),
    ("1y", timedelta(days=365)),
    ("all", None),
)

INDEX_PRICES = Table(
    schema="deribit",
    name="index_price_history",
    columns=("index_name", "ts", "price", "resolution"),
    types=("text", "timestamptz", "float8", "interval"),
    key=("index_name", "ts"),
    update_only_if="EXCLUDED.resolution <= t.resolution",
)

DEFAULT_INDEXES = ("btc_usd", "eth_usd")


def ranges_reaching(start: datetime, now: datetime) -> list[str]:
    """The ranges to ask, finest first, up to the first that reaches back to `start`."""
    chosen = []
    for name, span in RANGES:
        chosen.append(name)
        if span is None or now - span <= start:
            break
    return chosen


def resolution_of(points: list[list]) -> timedelta:
    steps = [b[0] - a[0] for a, b in zip(points, points[1:], strict=False) if b[0] > a[0]]
    return timedelta(milliseconds=round(median(steps))) if steps else timedelta(minutes=1)


async def first_point(client: DeribitClient, index_name: str) -> datetime | None:
    """When the exchange's history of an index starts: the first point of its whole-history (`all`) series,
    None when it has none. What `backfill index` wants when no --since is given."""
    reply = await client.get_index_chart_data(index_name, "all")
    try:
        stamps = [int(p[0]) for p in reply if p and p[1] is not None]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise UnexpectedReplyError(
            f"get_index_chart_data({index_name}, all): the exchange's reply is not as "
            f"documented ({exc.__class__.__name__}: {exc})"
        ) from None
    return from_ms(min(stamps)) if stamps else None


class IndexPrices(WholeDataset):
    """An index's samples, one task per index: the API answers ranges that end now, at their own resolutions."""

    name = "index"
    task_span = timedelta(days=100_000)  # one task per index

    async def fetch(
        self, client: DeribitClient, key: str, start: datetime, end: datetime, now: datetime
    ) -> list[tuple]:
        """Rows (index_name, ts, price, resolution) for start <= ts < end."""
        best: dict[int, tuple[float, timedelta]] = {}
        ranges = ranges_reaching(start, now)
        for range_ in ranges:
            reply = await client.get_index_chart_data(key, range_)
            try:
                points = sorted((int(p[0]), float(p[1])) for p in reply if p and p[1] is not None)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise UnexpectedReplyError(
                    f"get_index_chart_data({key}, {range_}): the exchange's reply is not "
                    f"as documented ({exc.__class__.__name__}: {exc})"
                ) from None
            resolution = resolution_of(points)
            for ts_ms, price in points:
                if to_ms(start) <= ts_ms < to_ms(end) and (ts_ms not in best or resolution <= best[ts_ms][1]):
                    best[ts_ms] = (price, resolution)
        return [(key, from_ms(ts), price, res) for ts, (price, res) in sorted(best.items())]

    async def load(self, conn: AsyncConnection, rows: list[tuple]) -> LoadResult:
        return await upsert_rows(conn, INDEX_PRICES, rows)


DATASET = IndexPrices()
