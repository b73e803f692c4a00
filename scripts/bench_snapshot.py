"""Benchmark: one snapshot round of the real-sized option chain under Deribit's limits, then the options views over
many rounds.

    (a) `deribit-ts snapshot options --json` (its own process, the client's default limiter) against the simulator
        (its own process, Deribit's default credit limits, the real-sized chain of 2024-03-01: ~1,730 options).
        Figures: options, requests, the round's seconds, and the ratio to the physical limit requests / 20 (the
        sustained allowance; the burst of ~90 lets a round beat it slightly). Target: <= 1.2.
    (b) the round is copied back in time to --rounds rounds (every 5 minutes), then every view is read the way the
        README reads it, under EXPLAIN ANALYZE; each is compared with reading one round's raw rows (the ratio says
        how much the view's work costs beyond fetching the data it shows).

The simulator is warmed first (both book summaries once): the real exchange answers a book summary in ~0.1 s, a
cold simulator spends seconds generating each option's candles for its 24 h statistics.

    .venv/bin/python scripts/bench_snapshot.py [--dsn DSN] [--rounds 300] [--json]

Without --dsn (or DERIBIT_TS_DSN) a private embedded cluster is started for the run and stopped at the end. With
one, the role needs CREATEDB: the benchmark works in a database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
from benchlib import database_server, fresh_database

NOW = "2024-03-01T12:00:30"
TARGET_RATIO = 1.2
QUERIES = {
    "option_chain_latest": "SELECT * FROM deribit.option_chain_latest",
    "iv_smile (latest 20)": "SELECT * FROM deribit.iv_smile WHERE currency = 'BTC' ORDER BY ts DESC LIMIT 20",
    "iv_smile (one round)": "SELECT * FROM deribit.iv_smile WHERE currency = 'BTC' AND ts = %(latest)s",
    "iv_term_structure (latest 20)": "SELECT * FROM deribit.iv_term_structure WHERE currency = 'BTC' "
    "ORDER BY ts DESC LIMIT 20",
    "iv_term_structure (a day)": "SELECT * FROM deribit.iv_term_structure WHERE currency = 'BTC' "
    "AND ts > %(latest)s::timestamptz - interval '1 day'",
    "iv_skew (latest 20)": "SELECT * FROM deribit.iv_skew WHERE currency = 'BTC' ORDER BY ts DESC LIMIT 20",
}
BASELINE = "SELECT * FROM deribit.option_ticker_snapshots WHERE ts = %(latest)s"


def _exe() -> str:
    return str(Path(sys.executable).parent / "deribit-ts")


def start_simulator() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([_exe(), "sim", "serve", "--port", "0", "--now", NOW], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    for currency in ("BTC", "ETH"):  # warm: see the docstring
        urllib.request.urlopen(
            f"{url}/api/v2/public/get_book_summary_by_currency?currency={currency}&kind=option", timeout=300
        ).read()
    time.sleep(5)  # let the two warming requests' credits come back
    return proc, url


def run_round(dsn: str, url: str) -> dict:
    env = {**os.environ, "DERIBIT_TS_DSN": dsn, "DERIBIT_TS_API_URL": url}
    env.pop("DERIBIT_TS_RATE_LIMIT_SCALE", None)  # the default limiter: Deribit's allowance
    started = time.monotonic()
    done = subprocess.run(
        [_exe(), "snapshot", "options", "--json"], env=env, capture_output=True, text=True, timeout=900, check=True
    )
    summary = json.loads(done.stdout)
    summary["process_seconds"] = time.monotonic() - started
    summary["allowance_seconds"] = summary["requests"] / 20
    summary["ratio"] = summary["seconds"] / summary["allowance_seconds"]
    return summary


def plant_rounds(dsn: str, rounds: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, quote_ts, underlying_price,
                   underlying_index, index_price, mark_price, mark_iv, bid_iv, ask_iv, best_bid_price, best_ask_price,
                   delta, gamma, vega, theta, rho, interest_rate, open_interest, greeks_source)
            SELECT instrument_id, ts - k * interval '5 min', quote_ts - k * interval '5 min', underlying_price,
                   underlying_index, index_price, mark_price, mark_iv, bid_iv, ask_iv, best_bid_price, best_ask_price,
                   delta, gamma, vega, theta, rho, interest_rate, open_interest, greeks_source
              FROM deribit.option_ticker_snapshots, generate_series(1, %s) k""",
            (rounds - 1,),
        )
        conn.execute(
            """INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only)
                        SELECT currency, ts - k * interval '5 min', options, bulk_only
                          FROM deribit_ts.snapshot_rounds, generate_series(1, %s) k""",
            (rounds - 1,),
        )
        conn.execute("ANALYZE deribit.option_ticker_snapshots")
        conn.execute("ANALYZE deribit_ts.snapshot_rounds")
        return conn.execute("SELECT count(*) FROM deribit.option_ticker_snapshots").fetchone()[0]


def explain_ms(conn: psycopg.Connection, query: str, params: dict) -> float:
    """Execution time of the best of three EXPLAIN ANALYZE runs (planning included), in ms."""
    best = float("inf")
    for _ in range(3):
        plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", params).fetchone()[0][0]
        best = min(best, plan["Planning Time"] + plan["Execution Time"])
    return best


def time_views(dsn: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        latest = conn.execute("SELECT max(ts) FROM deribit_ts.snapshot_rounds").fetchone()[0]
        params = {"latest": latest}
        baseline = explain_ms(conn, BASELINE, params)
        out = {"baseline: one round's raw rows": {"ms": round(baseline, 2), "ratio": 1.0}}
        for name, query in QUERIES.items():
            ms = explain_ms(conn, query, params)
            out[name] = {"ms": round(ms, 2), "ratio": round(ms / baseline, 1)}
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("DERIBIT_TS_DSN"), help="server DSN (role with CREATEDB)")
    parser.add_argument("--rounds", type=int, default=300, help="rounds of the chain planted for (b)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with database_server(args.dsn) as (server, _), fresh_database(server, "snapshot") as dsn:
        sim, url = start_simulator()
        try:
            round_ = run_round(dsn, url)
            rows = plant_rounds(dsn, args.rounds)
            views = time_views(dsn)
        finally:
            sim.terminate()
            sim.wait()
    result = {
        "round": {
            k: round_[k]
            for k in ("options", "by_currency", "requests", "seconds", "allowance_seconds", "ratio", "process_seconds")
        },
        "views": {"rounds": args.rounds, "rows": rows, "queries": views},
    }
    if args.json:
        print(json.dumps(result, default=str))
    else:
        r = result["round"]
        print(
            f"(a) snapshot round: {r['options']} options {r['by_currency']}, {r['requests']} requests in "
            f"{r['seconds']:.1f} s; allowance requests/20 = {r['allowance_seconds']:.1f} s; ratio "
            f"{r['ratio']:.2f} (target <= {TARGET_RATIO}); whole CLI process {r['process_seconds']:.1f} s"
        )
        print(f"(b) views over {args.rounds} rounds ({rows:,} rows), best of 3 EXPLAIN ANALYZE, planning included:")
        for view, v in views.items():
            print(f"    {view:34} {v['ms']:9.2f} ms   x{v['ratio']:g} of one round's raw read")
    return 0 if result["round"]["ratio"] <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
