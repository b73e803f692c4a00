"""Benchmark: the basis and funding views (sql/50_basis_funding.sql) and `deribit-ts report` on a loaded history.

Run it against a database holding a realistic history, e.g. the simulator's full one (51 million candles, about
4 minutes to load on 2 cores):

    export DERIBIT_TS_HOME=/tmp/bench-home
    deribit-ts sim serve --port 8765 --rate-limit off --now 2025-11-01 &
    DERIBIT_TS_RATE_LIMIT_SCALE=off deribit-ts backfill all --quiet --api-url http://127.0.0.1:8765
    .venv/bin/python scripts/bench_basis.py [--repeat 3] [--json] [--dsn DSN]

Each query runs --repeat times and the best time is kept (a warm cache). Every view query is printed next to a
baseline reading the same rows from the plain views (ohlcv_1m, funding_rates), so the ratio says what the
basis or APR costs on top of reading the candles, whatever the machine:

    basis, one day       basis_1m of the newest quarterly future over its last full day   vs ohlcv_1m, same rows
    basis, whole life    basis_1m of that future over its whole life                       vs ohlcv_1m, same rows
    term structure       SELECT * FROM basis_term_structure ORDER BY ts DESC LIMIT 10      (absolute)
    funding, 30 days     funding_apr of BTC-PERPETUAL over 30 days                          vs funding_rates
    report --html        the whole page, as a user runs it                                 (absolute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent


def best_of(conn: psycopg.Connection, sql: str, params: tuple, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = len(conn.execute(sql, params).fetchall())
        times.append(time.perf_counter() - start)
    return min(times), rows


def default_dsn() -> str:
    from deribit_ts.config import default_home
    from deribit_ts.db.embedded import Cluster

    cluster = Cluster(Path(os.environ.get("DERIBIT_TS_HOME") or default_home()))
    cluster.up(quiet=True)
    return cluster.url()


def measure(dsn: str, repeat: int) -> dict:
    figures: dict = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        figures["candles"] = conn.execute(
            "SELECT sum(rows) FROM deribit_ts.coverage WHERE dataset = 'candles'"
        ).fetchone()[0]
        # The newest quarterly (the longest-lived future) that has candles, and its last full day.
        future, last = conn.execute("""
            SELECT f.instrument_name, max(upper(c.fetched))
              FROM deribit.instruments f JOIN deribit_ts.coverage c ON c.key = f.instrument_name
             WHERE f.kind = 'future' AND NOT f.is_perpetual AND c.dataset = 'candles' AND c.rows > 0
               AND f.expiry - f.creation_ts > interval '200 days'
             GROUP BY f.instrument_name, f.expiry ORDER BY f.expiry DESC LIMIT 1""").fetchone()
        day_end = last.replace(hour=0, minute=0, second=0, microsecond=0)
        cases = {
            "basis_day": (
                "SELECT * FROM deribit.basis_1m WHERE instrument_name = %s AND ts >= %s AND ts < %s",
                "SELECT * FROM deribit.ohlcv_1m WHERE instrument_name = %s AND ts >= %s AND ts < %s",
                (future, day_end - timedelta(days=1), day_end),
            )
        }
        cases["basis_life"] = (
            "SELECT * FROM deribit.basis_1m WHERE instrument_name = %s",
            "SELECT * FROM deribit.ohlcv_1m WHERE instrument_name = %s",
            (future,),
        )
        newest_funding = conn.execute("SELECT max(ts) FROM deribit.funding_rate_history").fetchone()[0]
        cases["funding_30d"] = (
            "SELECT * FROM deribit.funding_apr WHERE instrument_name = 'BTC-PERPETUAL' "
            "AND ts > %s - interval '30 days'",
            "SELECT * FROM deribit.funding_rates WHERE instrument_name = 'BTC-PERPETUAL' "
            "AND ts > %s - interval '30 days'",
            (newest_funding,),
        )
        figures["future"] = future
        for name, (view_sql, base_sql, params) in cases.items():
            view_s, rows = best_of(conn, view_sql, params, repeat)
            base_s, base_rows = best_of(conn, base_sql, params, repeat)
            figures[name] = {
                "rows": rows,
                "seconds": round(view_s, 4),
                "baseline_seconds": round(base_s, 4),
                "ratio": round(view_s / base_s, 1) if base_s else None,
            }
        ts_s, ts_rows = best_of(
            conn, "SELECT * FROM deribit.basis_term_structure ORDER BY ts DESC LIMIT 10", (), repeat
        )
        figures["term_structure_limit_10"] = {"rows": ts_rows, "seconds": round(ts_s, 4)}
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "deribit-ts"), "report", "--html", str(page), "--dsn", dsn],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        figures["report_html"] = {"seconds": round(time.perf_counter() - start, 1), "bytes": page.stat().st_size}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("DERIBIT_TS_DSN"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.dsn or default_dsn(), args.repeat)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"history: {figures['candles']:,} candles; future: {figures['future']}")
    for name in ("basis_day", "basis_life", "funding_30d"):
        f = figures[name]
        print(
            f"{name:24} {f['rows']:>9,} rows {f['seconds'] * 1000:9.1f} ms   "
            f"baseline {f['baseline_seconds'] * 1000:8.1f} ms   ratio {f['ratio']}x"
        )
    f = figures["term_structure_limit_10"]
    print(f"{'term_structure_limit_10':24} {f['rows']:>9,} rows {f['seconds'] * 1000:9.1f} ms")
    f = figures["report_html"]
    print(f"{'report --html':24} {f['bytes']:>9,} bytes {f['seconds']:8.1f} s")


if __name__ == "__main__":
    main()
