"""Benchmark: the rollups and the storage, each figure with its baseline from the same run.

Apache edition (a private embedded cluster started for the run, or --dsn):
  1. the rollup query `select * from deribit.ohlcv_1d where instrument_name = 'BTC-PERPETUAL' order by ts desc
     limit 3` on the materialized rollups, against the same query on aggregate-on-read (the view of migration
     0005 that deribit-ts had before: GROUP BY over every one-minute row);
  2. `refresh` after a one-day load of every instrument, against a full rebuild of all rollups
     (deribit_ts.refresh_rollups(full => true)); the rebuild's rate in one-minute candles/s against twice the
     allowance's ingest (2 x 100,000 candles/s), the pace at which a refresh never holds a backfill up
     (`--instruments 1 --candles 1051200`: one instrument's two years, the shape whose join once went wrong);
  3. bytes per one-minute candle on disk (row storage, primary key included).
The candles are generated in SQL (generate_series, a random walk on a 0.5 tick per instrument) straight into a
scratch database, --candles in total over --instruments instruments.

Community edition (--tsl): starts the tsl tier's PGlite TimescaleDB (tests/tsl/server.mjs; needs Node and its
packages), loads --tsl-days of the simulator's BTC-PERPETUAL candles (realistic prices and volumes), compresses
them with the project's policies (`db compress`) and prints bytes per candle compressed against uncompressed.

    .venv/bin/python scripts/bench_rollups.py [--candles 10000000] [--instruments 20] [--dsn DSN] [--json]
    .venv/bin/python scripts/bench_rollups.py --tsl [--tsl-days 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from benchlib import database_server, fresh_database

from deribit_ts.db.migrate import apply_all
from deribit_ts.ingest import rollups

REPO = Path(__file__).resolve().parent.parent
QUERY = "SELECT * FROM deribit.ohlcv_1d WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY ts DESC LIMIT 3"
# deribit-ts before this change (migration 0005): the daily rollup aggregated on read.
AGGREGATE_ON_READ = """
SELECT i.instrument_name, c.* FROM (
    SELECT instrument_id, time_bucket(INTERVAL '1 day', ts) AS ts, first(open, ts) AS open, max(high) AS high,
           min(low) AS low, last(close, ts) AS close, sum(volume) AS volume, sum(cost) AS cost, count(*) AS candles
      FROM deribit.candles_1m GROUP BY 1, 2) c
JOIN deribit.instruments i ON i.id = c.instrument_id
WHERE i.instrument_name = 'BTC-PERPETUAL' ORDER BY ts DESC LIMIT 3"""
END = datetime(2026, 11, 30, tzinfo=UTC)
TWICE_THE_ALLOWANCE = 2 * 100_000  # candles/s: Deribit's default allowance ingests 100,000 a second


def generate(conn: psycopg.Connection, instruments: int, minutes: int, end: datetime) -> None:
    """`minutes` one-minute candles per instrument ending at `end`: a random walk on a 0.5 tick."""
    conn.execute(
        """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, raw)
           SELECT CASE WHEN n = 1 THEN 'BTC-PERPETUAL' ELSE 'BENCH-' || n END, 'future', n = 1, '{}'
             FROM generate_series(1, %s) n ON CONFLICT DO NOTHING""",
        (instruments,),
    )
    ids = [r[0] for r in conn.execute("SELECT id FROM deribit.instruments ORDER BY id LIMIT %s", (instruments,))]
    for iid in ids:
        load_minutes(conn, iid, end - timedelta(minutes=minutes), end)


def load_minutes(conn: psycopg.Connection, iid: int, start: datetime, end: datetime) -> None:
    conn.execute(
        """INSERT INTO deribit.candles_1m
           SELECT %(id)s, ts, p, p + h, p - l, p + d, v, v * p
             FROM (SELECT ts, 30000 + 0.5 * round(sum(step) OVER (ORDER BY ts) * 40) AS p,
                          0.5 * floor(random() * 20) AS h, 0.5 * floor(random() * 20) AS l,
                          0.5 * (floor(random() * 21) - 10) AS d, round((random() * 50)::numeric, 4)::float8 AS v
                     FROM (SELECT ts, random() - 0.5 AS step
                             FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',
                                                  interval '1 minute') ts) s) w
           ON CONFLICT DO NOTHING""",
        {"id": iid, "start": start, "end": end},
    )


def timed(conn: psycopg.Connection, query: str, runs: int = 5) -> float:
    """Median wall time of `runs` executions (after one warm-up), in ms."""
    conn.execute(query).fetchall()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        conn.execute(query).fetchall()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def apache(args) -> dict:
    with database_server(args.dsn) as (server, _), fresh_database(server, "rollups") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            per_instrument = args.candles // args.instruments
            began = time.perf_counter()
            generate(conn, args.instruments, per_instrument, END - timedelta(days=1))
            load_s = time.perf_counter() - began
            conn.execute("VACUUM ANALYZE")
            full = rollups.refresh(conn, full=True)  # the initial materialization = a full rebuild
            conn.execute("VACUUM ANALYZE")
            rows = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]
            materialized_ms = timed(conn, QUERY)
            on_read_ms = timed(conn, AGGREGATE_ON_READ, runs=3)
            # One more day of every instrument, as a daily backfill would load it, then the incremental refresh.
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM deribit.instruments ORDER BY id LIMIT %s", (args.instruments,))
            ]
            for iid in ids:
                load_minutes(conn, iid, END - timedelta(days=1), END)
            day = rollups.refresh(conn)
            candle_bytes = conn.execute("SELECT hypertable_size('deribit.candles_1m')").fetchone()[0]
            rows_after = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]
        return {
            "edition": "apache",
            "candles": rows,
            "instruments": args.instruments,
            "load_s": round(load_s, 1),
            "query_ms": round(materialized_ms, 2),
            "query_aggregate_on_read_ms": round(on_read_ms, 1),
            "query_speedup": round(on_read_ms / materialized_ms, 1),
            "refresh_one_day_s": day["seconds"],
            "refresh_one_day_instrument_days": day["days"],
            "full_rebuild_s": full["seconds"],
            "full_rebuild_instrument_days": full["days"],
            "full_rebuild_candles_per_s": round(rows / max(full["seconds"], 0.001)),
            "full_rebuild_over_twice_the_allowance": round(rows / max(full["seconds"], 0.001) / TWICE_THE_ALLOWANCE, 2),
            "refresh_vs_rebuild": round(full["seconds"] / max(day["seconds"], 0.001), 1),
            "bytes_per_candle_row_storage": round(candle_bytes / rows_after, 1),
        }


def tsl(args) -> dict:
    """Bytes per compressed one-minute candle on the Community edition (PGlite), simulator data."""
    from deribit_ts.db import storage
    from deribit_ts.sim import SimConfig, SimMarket

    server = subprocess.Popen(
        ["node", str(REPO / "tests/tsl/server.mjs"), "--port", "0"],
        cwd=REPO / "tests/tsl",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline()
        port = int(line.split()[2])
        dsn = f"host=127.0.0.1 port={port} user=postgres password=pglite dbname=postgres sslmode=disable"
        apply_all(dsn)
        market = SimMarket(SimConfig(now=datetime(2024, 6, 1, tzinfo=UTC)))
        start = datetime(2024, 3, 1, tzinfo=UTC)
        start_ms = int(start.timestamp() * 1000)
        end_ms = start_ms + args.tsl_days * 86_400_000
        with psycopg.connect(dsn, autocommit=True) as conn:
            iid = conn.execute(
                "INSERT INTO deribit.instruments (instrument_name, kind, raw) "
                "VALUES ('BTC-PERPETUAL', 'future', '{}') RETURNING id"
            ).fetchone()[0]
            rows = []
            for a in range(start_ms, end_ms, 5000 * 60_000):
                chart = market.candles("BTC-PERPETUAL", a, min(a + 5000 * 60_000, end_ms) - 60_000)
                rows += [
                    (iid, datetime.fromtimestamp(t / 1000, UTC), o, h, lo, c, v, k)
                    for t, o, h, lo, c, v, k in zip(
                        *(chart[x] for x in ("ticks", "open", "high", "low", "close", "volume", "cost")), strict=True
                    )
                ]
            for first in range(0, len(rows), 100):  # PGlite: ~100 rows per INSERT, no COPY
                batch = rows[first : first + 100]
                conn.execute(
                    "INSERT INTO deribit.candles_1m VALUES " + ", ".join(["(%s,%s,%s,%s,%s,%s,%s,%s)"] * len(batch)),
                    [v for row in batch for v in row],
                )
            before = {r["hypertable"]: r for r in storage.storage_report(conn)}["deribit.candles_1m"]
            storage.compress_due(conn)
            after = {r["hypertable"]: r for r in storage.storage_report(conn)}["deribit.candles_1m"]
        return {
            "edition": "timescale (PGlite tsl tier)",
            "candles": after["rows"],
            "days": args.tsl_days,
            "bytes_per_candle_uncompressed": before["bytes_per_row"],
            "bytes_per_candle_compressed": after["bytes_per_row"],
            "compressed_chunks": after["compressed_chunks"],
            "chunks": after["chunks"],
            "compression_ratio_of_compressed_chunks": after["compression_ratio"],
        }
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candles", type=int, default=10_000_000)
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--dsn", default=os.environ.get("DERIBIT_TS_DSN"))
    parser.add_argument("--tsl", action="store_true", help="measure compression on the tsl tier instead")
    parser.add_argument("--tsl-days", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = tsl(args) if args.tsl else apache(args)
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
