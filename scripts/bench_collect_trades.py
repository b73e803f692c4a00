"""Benchmark: what storing one page of a collector's trade scan costs (collect/trades.py: trades.store_new in the
page's own transaction), against the ceiling it must keep up with: Deribit answers at most 1,000 trades a request
and 20 requests a second, so a page may take at most 50 ms for the scan never to wait on the database.

Three kinds of pages of 1,000 trades, each --pages times on a fresh database: a perpetual's (new trades only),
options' (new trades of 20 options: each option's day of trades is summed again into deribit_ts.trade_days), and
a page already stored (what each scan's re-read of its trail costs). Median milliseconds per page.

    .venv/bin/python scripts/bench_collect_trades.py [--pages 40] [--dsn DSN] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime

from benchlib import database_server, fresh_database, machine

from deribit_ts.db.connect import connect_async
from deribit_ts.ingest import trades

PAGE = 1000
CEILING_MS = 1000 / 20  # Deribit's 20 requests a second, each page one request
START_MS = int(datetime(2024, 3, 7, tzinfo=UTC).timestamp() * 1000)


def page(number: int, options: bool) -> list[tuple[str, tuple]]:
    """Page `number`: 1,000 trades 37 ms apart (a busy hour), of BTC-PERPETUAL or of 20 options."""
    out = []
    for k in range(PAGE):
        n = number * PAGE + k
        name = f"BTC-8MAR24-{50_000 + n % 20 * 1000}-C" if options else "BTC-PERPETUAL"
        iv = 50.0 if options else None
        row = (START_MS + n * 37, str(10**9 + n), n, 0.05, 1.0, "buy", 1, 0.05, 60_000.0, iv, None, None, None, 1.0)
        out.append((name, (*row, None, None)))
    return out


async def timed(dsn: str, pages: list[list[tuple[str, tuple]]]) -> float:
    """Median milliseconds to store one page, each in its own transaction."""
    spent = []
    async with await connect_async(dsn) as conn:
        for p in pages:
            started = time.perf_counter()
            async with conn.transaction():
                await trades.store_new(conn, p)
            spent.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(spent), 1)


async def measure(dsn: str, count: int) -> dict:
    perpetual = [page(n, options=False) for n in range(count)]
    options = [page(count + n, options=True) for n in range(count)]
    out = {
        "perpetual page, new": await timed(dsn, perpetual),
        "options page, new": await timed(dsn, options),
        "page stored again": await timed(dsn, options),
    }
    return {what: {"ms": ms, "share_of_ceiling": round(ms / CEILING_MS, 2)} for what, ms in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--dsn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict = {"machine": machine(), "ceiling_ms": CEILING_MS, "pages": args.pages}
    with database_server(args.dsn) as (server, where), fresh_database(server, "collect_trades") as dsn:
        results["server"] = where
        results["pages_ms"] = asyncio.run(measure(dsn, args.pages))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    m = results["machine"]
    print(f"{m['date']}, {m['machine']}, {where}; ceiling {CEILING_MS:.0f} ms a page (1,000 trades x 20 requests/s)")
    for what, figures in results["pages_ms"].items():
        print(f"  {what:<22} {figures['ms']:>7.1f} ms  ({figures['share_of_ceiling']:.0%} of the ceiling)")


if __name__ == "__main__":
    main()
