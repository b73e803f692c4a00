"""Benchmark: what `deribit-ts refresh` costs per old snapshot round (the research rows of rounds stored before
their research was written: deribit_ts.summarize_option_round in SQL, the smile read, the SVI fits in numpy/scipy),
and so how long a year of 5-minute rounds (105,120 per currency) takes to catch up.

A fresh database gets --rounds 5-minute BTC rounds of real size: 12 live expiries (1 day to 9 months) of 33
strikes each, calls and puts (792 options a round), every option's ticker snapshot with a mark IV drawn from an
SVI smile (with noise), delta, open interest and the expiry's forward. The research refresh summarizes them once,
then again with each --workers count of fitting processes (the rounds marked as by an older version), timed by the
wall clock and this process' CPU clock (with one worker the SVI fits are this process' CPU; the rest of the wall
time is the database's SQL and waiting for a core), and the rate is extrapolated to a year of rounds:

    .venv/bin/python scripts/bench_round_research.py [--rounds 288] [--workers 1 2] [--dsn DSN] [--json]

The role behind DSN needs CREATEDB (a database of its own, dropped at the end); without --dsn a private embedded
cluster is started.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

import psycopg
from benchlib import database_server, fresh_database, machine, server_version

from deribit_ts.ingest import round_research

START = "2024-03-01"
ROUNDS_A_YEAR = 365 * 288

_SYNTHETIC = """
INSERT INTO deribit.instruments (instrument_name, kind, base_currency, settlement_currency, price_index, expiry,
                                 strike, option_type, raw)
SELECT format('BTC-%s-%s-%s', to_char(x.expiry, 'DDMONYY'), s.strike, upper(left(t.kind, 1))), 'option', 'BTC',
       'BTC', 'btc_usd', x.expiry, s.strike, t.kind, '{{}}'
  FROM unnest(ARRAY[1, 2, 3, 7, 14, 21, 28, 56, 91, 119, 182, 273]) d,
       LATERAL (SELECT '{start} 08:00+00'::timestamptz + d * interval '1 day' AS expiry) x,
       LATERAL (SELECT (round(60000 * exp(-0.7 + 1.3 * n / 32.0) / 500) * 500)::double precision AS strike
                  FROM generate_series(0, 32) n) s,
       unnest(ARRAY['call', 'put']) t(kind);
INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only)
SELECT 'BTC', '{start}'::timestamptz + n * interval '5 minutes', 792, true FROM generate_series(0, {rounds} - 1) n;
INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, quote_ts, underlying_price, index_price, mark_price,
                                             mark_iv, delta, open_interest, greeks_source)
SELECT i.id, r.ts, r.ts, f.forward, 60000, 0.01, v.iv,
       -- Black-76 delta with a logistic normal CDF (close enough for a benchmark's wings)
       1 / (1 + exp(-1.702 * v.d1)) - CASE WHEN i.option_type = 'call' THEN 0 ELSE 1 END,
       10 + 100 * random(), 'ticker'
  FROM deribit_ts.snapshot_rounds r
  JOIN deribit.instruments i ON i.kind = 'option' AND i.expiry > r.ts
 CROSS JOIN LATERAL (SELECT 60000 * (1 + 0.001 * sin(extract(epoch FROM r.ts) / 3600))
                            * (1 + 0.0002 * extract(epoch FROM i.expiry - r.ts) / 86400) AS forward,
                            extract(epoch FROM i.expiry - r.ts) / (365 * 86400) AS years) f
 CROSS JOIN LATERAL (SELECT ln(i.strike / f.forward) AS k) m
 CROSS JOIN LATERAL (SELECT 100 * sqrt((0.04 * f.years + 0.1 * sqrt(f.years)
                                        * (-0.4 * (m.k - 0.02) + sqrt((m.k - 0.02) ^ 2 + 0.04))) / f.years)
                            * (1 + 0.01 * (random() - 0.5)) AS iv) w
 CROSS JOIN LATERAL (SELECT w.iv,
                            (-m.k + (w.iv / 100) ^ 2 * f.years / 2) / (w.iv / 100 * sqrt(f.years)) AS d1) v
 ORDER BY r.ts, i.id
"""


def measure(conn: psycopg.Connection, workers: int) -> dict:
    """Every round summarized again (marked as by an older version first) with `workers` fitting processes."""
    conn.execute("UPDATE deribit_ts.option_round_summaries SET version = 0")
    wall, cpu = time.monotonic(), time.process_time()
    summary = round_research.refresh(conn, workers=workers)
    seconds = time.monotonic() - wall
    rounds = max(summary["rounds_summarized"], 1)
    return {
        "workers": workers,
        "rounds": summary["rounds_summarized"],
        "svi_fits": summary["svi_fits"],
        "wall_seconds": round(seconds, 2),
        "this_process_cpu_seconds": round(time.process_time() - cpu, 2),
        "seconds_a_round": round(seconds / rounds, 4),
        "year_of_rounds_hours": round(seconds / rounds * ROUNDS_A_YEAR / 3600, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=288, help="5-minute rounds to generate (288: a day)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="fitting processes, each measured")
    parser.add_argument("--dsn", help="a server whose role has CREATEDB (default: a private embedded cluster)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}
    with database_server(args.dsn) as (server, where), fresh_database(server, "rounds") as dsn:
        report["server"] = f"{server_version(server)}, {where}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            for statement in filter(str.strip, _SYNTHETIC.format(start=START, rounds=args.rounds).split(";\n")):
                conn.execute(statement)
            conn.execute("VACUUM ANALYZE")
            report["load_seconds"] = round(time.monotonic() - started, 1)
            report["snapshots"] = conn.execute("SELECT count(*) FROM deribit.option_ticker_snapshots").fetchone()[0]
            round_research.refresh(conn)  # the first pass writes every row; the measured ones replace them
            report["runs"] = [measure(conn, workers) for workers in args.workers]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['date']} on {report['machine']}; {report['server']}")
    print(f"{args.rounds} rounds, {report['snapshots']:,} option snapshots loaded in {report['load_seconds']} s")
    for run in report["runs"]:
        print(
            f"  workers {run['workers']}: {run['rounds']} rounds, {run['svi_fits']} SVI fits "
            f"in {run['wall_seconds']} s "
            f"({run['seconds_a_round']} s a round, this process' CPU {run['this_process_cpu_seconds']} s); "
            f"a year of rounds (105,120) at that rate: {run['year_of_rounds_hours']} h"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
