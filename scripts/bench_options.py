"""Benchmark: an options backfill under Deribit's limits, and the bytes per option-day of the filler decision.

1. Throughput. `deribit-ts backfill options` against the simulator with Deribit's default credit limits (20
   requests/s sustained) and --latency-ms of latency, with the client's default limiter, on every BTC option alive
   in the last --days days (active and expired). The rate is the run's chart requests divided by the time between
   its first and last committed window (so the catalogue's 1-request/s calls and process start-up are left out),
   and it is compared with the limiter's ceiling over that same time: 20 requests/s plus the 90-request pool it
   may open with. Target: >= 85%.
2. Bytes. The run's option candles are stored the decided way (traded candles as rows, filler minutes as ranges
   in deribit_ts.coverage.filled). The other way, every filler as a row, is built in the same database from the
   same data (each filler at its last traded close) in a table shaped exactly like deribit.candles_1m (same
   hypertable chunking, same primary key). Both are measured with hypertable_size (heap, indexes, TOAST) and
   divided by the option-days fetched (minutes covered / 1,440). Apache row storage; on a server with the
   Community (TSL) license both are also measured compressed (segmentby instrument_id, orderby ts).

    .venv/bin/python scripts/bench_options.py [--days 2] [--latency-ms 50] [--json] [--dsn DSN]

Without --dsn (or DERIBIT_TS_DSN) a private embedded cluster is started in a temporary home and stopped at the end.
Exit status 0 when the throughput target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from benchlib import cli_path, database_server, fresh_database, server_version

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ALLOWANCE = 20.0  # Deribit's default bucket: 10,000 credits/s refill / 500 credits a request
# The limiter's pool (50,000 credits less its 10% headroom = 90 requests) fills while the catalogue is read (that
# bucket is get_instruments' own), so the run may open with a burst of this many requests on top of the refill.
BURST = 50_000 * 0.9 / 500
TARGET = 0.85


def serve_sim(options: dict) -> None:
    """Child role: the simulator with Deribit's limits, its candle cache filled for every BTC option of the range
    before the URL is printed (the real exchange does not generate candles on our cores; bench_backfill.py does
    the same)."""
    import asyncio

    from aiohttp import web

    from deribit_ts.sim import SimConfig, SimMarket
    from deribit_ts.sim.server import SimServer

    config = SimConfig(now=NOW, rate_limit="deribit", latency_ms=options["latency_ms"], cache_blocks=1 << 16)
    market = SimMarket(config)
    since_ms, now_ms = int(options["since_ms"]), int(NOW.timestamp() * 1000)
    for expired in (False, True):
        for inst in market.instruments("BTC", "option", expired=expired):
            market.candles(inst.name, since_ms, now_ms)

    async def main() -> None:
        runner = web.AppRunner(SimServer(config, market).app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_sim(latency_ms: float, since: datetime) -> tuple[subprocess.Popen, str]:
    options = {"latency_ms": latency_ms, "since_ms": int(since.timestamp() * 1000)}
    process = subprocess.Popen(
        [sys.executable, __file__, "--role", "sim", "--role-options", json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("http://"):
        process.terminate()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return process, line.strip()


def throughput(dsn: str, url: str, days: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DERIBIT_TS_RATE_LIMIT_SCALE", "DERIBIT_TS_DSN")}
    began = time.perf_counter()
    done = subprocess.run(
        [
            cli_path(),
            "backfill",
            "options",
            "--currency",
            "BTC",
            "--since",
            (NOW - timedelta(days=days)).isoformat(),
            "--json",
            "--quiet",
            "--dsn",
            dsn,
            "--api-url",
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"backfill failed: {done.stderr.strip()}")
    summary = json.loads(done.stdout)
    with psycopg.connect(dsn) as conn:
        first, last, windows, stored, fillers = conn.execute(
            """SELECT min(fetched_at), max(fetched_at), count(*), sum(rows),
                      coalesce(sum((SELECT sum(extract(epoch FROM upper(r) - lower(r)) / 60) FROM unnest(filled) r)), 0)
                 FROM deribit_ts.coverage WHERE dataset = 'candles'"""
        ).fetchone()
    span = (last - first).total_seconds()
    requests = summary["datasets"]["candles"]["requests"]
    # The requests answered after the first commit (the first window's request came before it).
    counted = requests - 1
    rate = counted / span if span else 0.0
    ceiling = (ALLOWANCE * span + BURST) / span if span else ALLOWANCE  # what the limiter allows in that time
    return {
        "options": sum(summary["tiers"].values()),
        "tiers": summary["tiers"],
        "windows": windows,
        "chart_requests": requests,
        "seconds": round(span, 2),
        "wall_s": round(wall, 2),
        "requests_per_s": round(rate, 2),
        "ceiling_per_s": round(ceiling, 2),
        "share": round(rate / ceiling, 3),
        "throttled": summary["exchange"]["throttled"],
        "rows_stored": int(stored),
        "filler_minutes": int(fillers),
    }


_BUILD_WITH_FILLERS = """
CREATE TABLE bench_with_fillers (LIKE deribit.candles_1m INCLUDING ALL);
SELECT create_hypertable('bench_with_fillers', by_range('ts', INTERVAL '7 days'), create_default_indexes => false);
INSERT INTO bench_with_fillers SELECT * FROM deribit.candles_1m;
INSERT INTO bench_with_fillers
SELECT i.id, m, p.close, p.close, p.close, p.close, 0, 0
  FROM deribit_ts.coverage cv
  JOIN deribit.instruments i ON i.instrument_name = cv.key
 CROSS JOIN LATERAL unnest(cv.filled) AS r
 CROSS JOIN LATERAL generate_series(lower(r), upper(r) - interval '1 minute', interval '1 minute') AS m
 CROSS JOIN LATERAL (SELECT coalesce((SELECT c.close FROM deribit.candles_1m c
                                       WHERE c.instrument_id = i.id AND c.ts < m ORDER BY c.ts DESC LIMIT 1), 0)
                            AS close) p
 WHERE cv.dataset = 'candles' AND cv.filled IS NOT NULL
ON CONFLICT DO NOTHING;
"""


def storage(dsn: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        option_days = conn.execute(
            """SELECT sum(extract(epoch FROM upper(r) - lower(r))) / 86400
                 FROM (SELECT unnest(range_agg(fetched)) AS r FROM deribit_ts.coverage
                        WHERE dataset = 'candles' GROUP BY key) k"""
        ).fetchone()[0]
        option_days = float(option_days)
        for statement in _BUILD_WITH_FILLERS.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("VACUUM ANALYZE deribit.candles_1m")
        conn.execute("VACUUM ANALYZE bench_with_fillers")
        traded_rows, all_rows = conn.execute(
            "SELECT (SELECT count(*) FROM deribit.candles_1m), (SELECT count(*) FROM bench_with_fillers)"
        ).fetchone()
        decided = conn.execute("SELECT hypertable_size('deribit.candles_1m')").fetchone()[0]
        # The decision's bookkeeping: the filler ranges kept in coverage.
        ranges = conn.execute("SELECT coalesce(sum(pg_column_size(filled)), 0) FROM deribit_ts.coverage").fetchone()[0]
        other = conn.execute("SELECT hypertable_size('bench_with_fillers')").fetchone()[0]
        result = {
            "option_days": round(option_days, 1),
            "traded_rows": traded_rows,
            "rows_with_fillers": all_rows,
            "row_storage": {
                "decided_bytes_per_option_day": round((decided + ranges) / option_days),
                "fillers_as_rows_bytes_per_option_day": round(other / option_days),
            },
        }
        result["row_storage"]["ratio"] = round(
            result["row_storage"]["fillers_as_rows_bytes_per_option_day"]
            / result["row_storage"]["decided_bytes_per_option_day"],
            1,
        )
        license_ = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]
        if license_ == "timescale":
            result["compressed"] = _compressed(conn, option_days, ranges)
        conn.execute("DROP TABLE bench_with_fillers")
    return result


def _compressed(conn: psycopg.Connection, option_days: float, ranges: int) -> dict:
    sizes = {}
    for table in ("deribit.candles_1m", "bench_with_fillers"):
        conn.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = "
            "'instrument_id', timescaledb.compress_orderby = 'ts')"
        )
        conn.execute(f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c")
        sizes[table] = conn.execute(f"SELECT hypertable_size('{table}')").fetchone()[0]
    decided = (sizes["deribit.candles_1m"] + ranges) / option_days
    other = sizes["bench_with_fillers"] / option_days
    return {
        "decided_bytes_per_option_day": round(decided),
        "fillers_as_rows_bytes_per_option_day": round(other),
        "ratio": round(other / decided, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2, help="option history to backfill, days before the sim's now")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency the simulator adds to every answer")
    parser.add_argument("--dsn", default=os.environ.get("DERIBIT_TS_DSN"), help="server DSN (role needs CREATEDB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--role-options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sim":
        serve_sim(json.loads(args.role_options))
        return 0
    sim, url = start_sim(args.latency_ms, NOW - timedelta(days=args.days))
    try:
        with database_server(args.dsn) as (server, where), fresh_database(server, "options") as dsn:
            result = {
                "taken": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "server": server_version(server),
                "where": where,
                "days": args.days,
                "latency_ms": args.latency_ms,
                "throughput": throughput(dsn, url, args.days),
            }
            result["storage"] = storage(dsn)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    t, s = result["throughput"], result["storage"]
    met = t["share"] >= TARGET and t["throttled"] == 0
    if args.json:
        print(json.dumps({**result, "target_met": met}))
    else:
        print(f"{result['taken']}  {result['server']} ({where})")
        print(
            f"options backfill, BTC, {args.days} days, {t['options']} options {t['tiers']}, latency "
            f"{args.latency_ms:g} ms, Deribit limits"
        )
        print(
            f"  {t['chart_requests']:,} chart requests in {t['seconds']:.1f} s = {t['requests_per_s']:.2f}/s "
            f"vs the limiter's ceiling {t['ceiling_per_s']:g}/s (20/s + its {BURST:.0f}-request pool): "
            f"{t['share']:.1%} (target {TARGET:.0%}); "
            f"{t['throttled']} throttled; wall {t['wall_s']:.1f} s"
        )
        print(f"  traded candles stored {t['rows_stored']:,}; filler minutes kept as ranges {t['filler_minutes']:,}")
        print(f"bytes per option-day over {s['option_days']:,} option-days (Apache row storage):")
        r = s["row_storage"]
        print(
            f"  traded rows + filler ranges: {r['decided_bytes_per_option_day']:,}   every filler as a row: "
            f"{r['fillers_as_rows_bytes_per_option_day']:,}   ({r['ratio']}x)"
        )
        if "compressed" in s:
            c = s["compressed"]
            print(
                f"  compressed (TSL): {c['decided_bytes_per_option_day']:,} vs "
                f"{c['fillers_as_rows_bytes_per_option_day']:,} ({c['ratio']}x)"
            )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
