"""Daily delivery prices of an index (btc_usd, ...) into deribit.delivery_prices.

public/get_delivery_prices pages by offset from the newest delivery, at most 1,000 a page (docs/deribit.md, Endpoints).
Pages are walked newest first until the oldest date of the asked range is passed or records_total is reached. A
delivery published between two pages shifts the later pages by one: that repeats a row (deduplicated by date),
never skips one. A delivery happens at 08:00 UTC of its date; that instant places it in a task's range.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from psycopg import AsyncConnection

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest.dataset import WholeDataset
from deribit_ts.ingest.load import LoadResult, Table, upsert_rows

DELIVERY_PRICES = Table(
    schema="deribit",
    name="delivery_prices",
    columns=("index_name", "date", "delivery_price"),
    types=("text", "date", "float8"),
    key=("index_name", "date"),
)

PAGE = 1000  # the documented maximum `count`
DELIVERY_TIME = time(8, 0, tzinfo=UTC)
DEFAULT_INDEXES = ("btc_usd", "eth_usd")


def delivered_at(day: date) -> datetime:
    return datetime.combine(day, DELIVERY_TIME)


async def first_delivery(client: DeribitClient, index_name: str) -> datetime | None:
    """When the exchange's deliveries of an index start (the oldest one, two requests); None when it has none."""
    newest = await client.call("get_delivery_prices", {"index_name": index_name, "count": 1})
    total = int(newest["records_total"])
    if total == 0:
        return None
    oldest = await client.call("get_delivery_prices", {"index_name": index_name, "offset": total - 1, "count": 1})
    # Both ends of the list, whichever order the exchange keeps it in.
    days = [date.fromisoformat(r["date"]) for r in (*newest["data"], *oldest["data"])]
    return delivered_at(min(days)) if days else None


class DeliveryPrices(WholeDataset):
    """An index's daily delivery prices: the API pages by offset from the newest delivery."""

    name = "delivery"
    task_span = timedelta(days=100_000)  # one task per index

    async def fetch(
        self, client: DeribitClient, key: str, start: datetime, end: datetime, now: datetime
    ) -> list[tuple]:
        """Rows (index_name, date, price) of the deliveries at start <= 08:00 of date < end."""
        found: dict[date, float] = {}
        offset, total = 0, None
        while total is None or offset < total:
            reply = await client.call("get_delivery_prices", {"index_name": key, "offset": offset, "count": PAGE})
            try:
                total = int(reply["records_total"])
                page = [(date.fromisoformat(r["date"]), float(r["delivery_price"])) for r in reply["data"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise UnexpectedReplyError(
                    f"get_delivery_prices({key}, offset {offset}): the exchange's reply is "
                    f"not as documented ({exc.__class__.__name__}: {exc})"
                ) from None
            if not page:
                break
            for day, price in page:
                if start <= delivered_at(day) < end:
                    found[day] = price
            offset += len(page)
            newest_first = page[0][0] >= page[-1][0]  # as documented; if not, every page is read
            if newest_first and page[-1][0] < (start - timedelta(days=1)).date():
                break  # the rest is older than the range
        return [(key, day, price) for day, price in sorted(found.items())]

    async def load(self, conn: AsyncConnection, rows: list[tuple]) -> LoadResult:
        return await upsert_rows(conn, DELIVERY_PRICES, rows)


DATASET = DeliveryPrices()
