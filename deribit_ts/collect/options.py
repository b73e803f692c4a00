"""Which options traded: the collector fetches candles only for those.

A chart request per option per minute would need ~27 requests a second for Deribit's ~1,600 live options, more
than the allowance, and most minutes of most options have no trade (their candle is a filler at the last close).
So every couple of minutes one bulk request per currency, public/get_last_trades_by_currency_and_time with
kind=option, lists the trades since the last scan, paged by time (1,000 trades a page): its instrument names are
exactly the options whose candles changed. Why trades and not get_book_summary_by_currency: the book summary's
24-hour volume and last price only hint at a trade (a trade at the last price, or one that offsets a volume falling
out of the 24-hour window, changes neither), while a trade list is exact, and pages by time, so after an outage the
scan simply starts at its watermark. The cost is a request per 1,000 trades, a few a minute at Deribit's volumes.

Each option that traded gets its candles planned from its own watermark (or the collector's origin) to the last
closed minute, like any instrument; the scan window trails by the candles' settling time, so an option's candles
are fetched again until final even if it does not trade again.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import UnexpectedReplyError

PAGE = 1000  # the most trades one request returns


async def traded_options(client: DeribitClient, currency: str, start_ms: int, end_ms: int) -> set[str]:
    """Names of the options of `currency` with a trade in [start_ms, end_ms]."""
    names: set[str] = set()
    cursor = start_ms
    while cursor <= end_ms:
        reply = await client.call(
            "get_last_trades_by_currency_and_time",
            {
                "currency": currency,
                "kind": "option",
                "start_timestamp": cursor,
                "end_timestamp": end_ms,
                "count": PAGE,
                "sorting": "asc",
            },
        )
        try:
            trades = reply.get("trades") or []
            names.update(t["instrument_name"] for t in trades)
            last = max((int(t["timestamp"]) for t in trades), default=cursor)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UnexpectedReplyError(
                f"get_last_trades_by_currency_and_time({currency}, option): the exchange's "
                f"reply is not as documented ({exc.__class__.__name__}: {exc})"
            ) from None
        if not reply.get("has_more") or not trades:
            return names
        # The next page starts at the last timestamp seen (trades of that millisecond may continue on it); a page
        # entirely inside one millisecond moves on by one, rather than asking for the same page forever.
        cursor = last if last > cursor else cursor + 1
    return names


async def scan_watermark(conn: AsyncConnection, currency: str):
    cur = await conn.execute(
        "SELECT covered_until FROM deribit_ts.watermarks WHERE dataset = 'option_trades' AND key = %s", (currency,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def set_scan_watermark(conn: AsyncConnection, currency: str, until) -> None:
    await conn.execute(
        """INSERT INTO deribit_ts.watermarks AS w (dataset, key, covered_until) VALUES ('option_trades', %s, %s)
           ON CONFLICT (dataset, key) DO UPDATE
               SET covered_until = greatest(w.covered_until, EXCLUDED.covered_until), updated_at = now()""",
        (currency, until),
    )
