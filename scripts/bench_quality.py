"""Benchmark: the data-quality views over one instrument's whole one-minute history (over four million candles).

BTC-PERPETUAL's simulated history (outages, filler candles and bad ticks included) is written straight into a
fresh, migrated database with COPY, with the coverage records a backfill would leave (one per 5,000-candle
window, so every outage is "fetched, the exchange had nothing"). Then, each query run --repeat times and the
best time kept (a warm cache, as a report a user runs twice):

    baseline   SELECT count(*) of the instrument's candles: the same rows, read once, no work per row
    gaps       SELECT * FROM deribit.gap_report WHERE instrument_name = ...
    sanity     SELECT * FROM deribit.sanity_violations WHERE instrument_name = ... (whole history, one day)
    coverage   SELECT * FROM deribit.coverage WHERE key = ...

and prints each against the baseline (a ratio), so the figure says how close to reading the rows once a report
comes, whatever the machine. The target: the gap report in about a second.

    .venv/bin/python scripts/bench_quality.py [--now 2026-09-01] [--repeat 3] [--json] [--dsn DSN]

Without --dsn (or DERIBIT_TS_DSN) a private embedded cluster is started in a temporary home and stopped at the
end; with one, the role needs CREATEDB, and the benchmark's database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from benchlib import database_server, fresh_database, machine, server_version

from deribit_ts.sim import SimConfig, SimMarket  # noqa: E402

INSTRUMENT = "BTC-PERPETUAL"
DAY_MS = 86_400_000
WINDOW_MINUTES = 5000
TARGET_GAPS_S = 1.0


def load_history(dsn: str, market: SimMarket, now: datetime) -> tuple[int, datetime, datetime]:
    """Write the instrument's candles and the coverage a backfill would record; return (candles, start, end)."""
    inst = market.instrument(INSTRUMENT)
    start = datetime.fromtimestamp(inst.creation_ms / 1000, UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(dsn) as conn:
        instrument_id = conn.execute(
            """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, creation_ts,
                                                 tick_size, raw)
               VALUES (%s, 'future', true, 'BTC', %s, %s, '{}') RETURNING id""",
            (INSTRUMENT, start, inst.tick),
        ).fetchone()[0]
        total = 0
        with conn.cursor().copy("COPY deribit.candles_1m FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "timestamptz", "float8", "float8", "float8", "float8", "float8", "float8"])
            day = int(start.timestamp() * 1000)
            while day < int(end.timestamp() * 1000):  # a month at a time keeps memory flat
                last = min(day + 30 * DAY_MS, int(end.timestamp() * 1000))
                c = market.candle_arrays(INSTRUMENT, day, last - 1)
                for row in zip(
                    c["ticks"].tolist(),
                    c["open"].tolist(),
                    c["high"].tolist(),
                    c["low"].tolist(),
                    c["close"].tolist(),
                    c["volume"].tolist(),
                    c["cost"].tolist(),
                    strict=True,
                ):
                    copy.write_row((instrument_id, datetime.fromtimestamp(row[0] / 1000, UTC), *row[1:]))
                total += len(c["ticks"])
                day = last
        conn.execute(
            "INSERT INTO deribit_ts.targets (dataset, key, wanted) VALUES ('candles', %s, "
            "tstzmultirange(tstzrange(%s, %s)))",
            (INSTRUMENT, start, end),
        )
        conn.execute(
            """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until)
               SELECT 'candles', %(name)s, tstzrange(a, least(a + %(window)s, %(end)s)),
                      (SELECT count(*) FROM deribit.candles_1m
                        WHERE instrument_id = %(id)s AND ts >= a AND ts < least(a + %(window)s, %(end)s)),
                      least(a + %(window)s, %(end)s)
                 FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',
                                      %(window)s) AS a""",
            {
                "name": INSTRUMENT,
                "window": timedelta(minutes=WINDOW_MINUTES),
                "start": start,
                "end": end,
                "id": instrument_id,
            },
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have by the time anyone reads a history this size
    return total, start, end


def best_of(dsn: str, query: str, params: tuple, repeat: int) -> tuple[float, list]:
    with psycopg.connect(dsn) as conn:
        times, rows = [], []
        for _ in range(repeat):
            began = time.perf_counter()
            rows = conn.execute(query, params).fetchall()
            times.append(time.perf_counter() - began)
    return min(times), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "--now",
        default="2026-09-01",
        help="the simulated 'now' (UTC date): history ends there (2026-09-01: 4.2 million candles)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query; the best is kept")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("DERIBIT_TS_DSN"),
        help="TimescaleDB server to create the benchmark's database on (default: a private embedded "
        "cluster in a temporary home); also DERIBIT_TS_DSN",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now).replace(tzinfo=UTC)
    market = SimMarket(SimConfig(now=now))
    began = time.perf_counter()
    with database_server(args.dsn) as (server, where), fresh_database(server, "quality") as dsn:
        load_began = time.perf_counter()
        candles, start, end = load_history(dsn, market, now)
        load_s = time.perf_counter() - load_began
        day = start + (end - start) / 2
        queries = {
            "baseline": (
                "SELECT count(*) FROM deribit.candles_1m c JOIN deribit.instruments i "
                "ON i.id = c.instrument_id WHERE i.instrument_name = %s",
                (INSTRUMENT,),
            ),
            "gaps": ("SELECT * FROM deribit.gap_report WHERE instrument_name = %s", (INSTRUMENT,)),
            "sanity": ("SELECT * FROM deribit.sanity_violations WHERE instrument_name = %s", (INSTRUMENT,)),
            "sanity_day": (
                "SELECT * FROM deribit.sanity_violations WHERE instrument_name = %s AND ts >= %s AND ts < %s",
                (INSTRUMENT, day, day + timedelta(days=1)),
            ),
            "coverage": ("SELECT * FROM deribit.coverage WHERE key = %s", (INSTRUMENT,)),
        }
        results = {name: best_of(dsn, q, p, args.repeat) for name, (q, p) in queries.items()}
        version = server_version(server)
    base = results["baseline"][0]
    outages = [
        (a, b) for a, b in market.outage_windows() if a < end.timestamp() * 1000 and b > start.timestamp() * 1000
    ]
    gap_rows = results["gaps"][1]
    report = {
        "database": f"{version}, {where}",
        **machine(),  # date, machine, python
        "load_average": os.getloadavg()[0],
        "candles": candles,
        "history": f"{start:%Y-%m-%d}..{end:%Y-%m-%d}",
        "load_s": round(load_s, 1),
        "seconds": {name: round(t, 4) for name, (t, _) in results.items()},
        "over_baseline": {name: round(t / base, 2) for name, (t, _) in results.items()},
        "gap_rows": len(gap_rows),
        "outages_in_history": len(outages),
        "spikes": sum(1 for r in results["sanity"][1] if r[3] == "spike"),
        "gaps_target_met": results["gaps"][0] <= TARGET_GAPS_S,
        "total_s": round(time.perf_counter() - began, 1),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"deribit-ts quality benchmark: {INSTRUMENT}, {candles:,} one-minute candles ({report['history']}, "
        f"simulated), loaded in {load_s:.0f} s"
    )
    print(f"{report['date']} on {report['machine']}, load average {report['load_average']:.1f}")
    print(f"database: {report['database']}")
    print(f"best of {args.repeat} runs each, warm cache\n")
    print(f"{'query':<58}{'seconds':>9}{'x count(*)':>12}  rows")
    labels = {
        "baseline": "count(*) of the instrument's candles (baseline)",
        "gaps": "gap_report WHERE instrument_name = ...",
        "sanity": "sanity_violations WHERE instrument_name = ... (all)",
        "sanity_day": "sanity_violations ... AND ts in one day",
        "coverage": "coverage WHERE key = ...",
    }
    for name, (t, rows) in results.items():
        shown = rows[0][0] if name == "baseline" else len(rows)
        print(f"{labels[name]:<58}{t:>9.3f}{t / base:>12.2f}  {shown:,}")
    print(
        f"\ngap report rows {len(gap_rows)} (the simulator's outages in this history: {len(outages)}); "
        f"spikes found {report['spikes']}"
    )
    print(
        f"{'PASS' if report['gaps_target_met'] else 'MISS'}  gap report for one instrument in about a second "
        f"(<= {TARGET_GAPS_S:.0f} s): {results['gaps'][0]:.2f} s"
    )
    print(f"benchmark total {report['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
