"""Benchmark: the research and quality views over a whole history, each against a baseline read of its rows.

The history is generated in SQL with the shape of the simulator's `backfill all` (scripts/bench_views_history.sql:
perpetuals and futures with a candle every minute, sparse options with their filler minutes in coverage.filled,
hourly funding, the index, targets and coverage records one per 5,000-minute window), because the simulator's own
full backfill takes hours on the shared 2-core machine. Each query runs --repeat times, the best time kept (a warm
cache), and is printed next to a baseline read of the same rows in the same run:

    coverage          SELECT * FROM deribit.coverage                 vs the aggregate of its bookkeeping rows
    gap_report        SELECT * FROM deribit.gap_report               vs count(*) of every candle
    basis_ts          basis_term_structure of one currency, all      vs the hourly bars of its dated futures (the rows
                                                                     it rests on, about as many, to the client too)
    basis_ts_on_read  the same rows computed on read, as the view    vs the same hourly bars
                      was before the refresh kept its rows
    funding_30d       funding_apr of BTC-PERPETUAL over 30 days      vs funding_rates, same rows
    sanity_all        SELECT * FROM deribit.sanity_violations        vs count(*) of every candle
    sanity_last_day   sanity_violations, the last day of every instrument   vs count(*) of that day's candles
    report_html       deribit-ts report --html (every section)       (absolute; a subprocess, as a user runs it)

    .venv/bin/python scripts/bench_views.py [--start 2024-01-01] [--now 2025-11-01] [--repeat 3] [--json]
                                            [--dsn DSN [--keep]]

Without --dsn (or DERIBIT_TS_DSN) a private embedded cluster is started in a temporary home and stopped at the
end; with one, the role needs CREATEDB and the benchmark's database is dropped at the end unless --keep (then
its DSN is printed, and --reuse DSN measures it again without loading).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from benchlib import database_server, fresh_database, server_version

HISTORY_SQL = Path(__file__).resolve().parent / "bench_views_history.sql"
TARGETS_S = {
    "coverage": 1.0,
    "gap_report": 2.0,
    "basis_ts": 1.0,
    "sanity_all": 10.0,
    "sanity_last_day": 0.2,
    "report_html": 15.0,
}


# deribit.basis_term_structure of BTC as it was defined before the refresh kept its rows (computed on read).
BASIS_TS_ON_READ = """
SELECT f.currency, h.ts, f.expiry, extract(epoch FROM f.expiry - h.ts)::double precision / 86400 AS days_to_expiry,
       CASE WHEN f.expiry - h.ts >= interval '1 day'
            THEN 100 * (b.close / h.price - 1) * 365 / (extract(epoch FROM f.expiry - h.ts)::double precision / 86400)
       END AS annualized_basis_pct,
       f.instrument_name, b.close AS future_price, h.price AS index_price, 100 * (b.close / h.price - 1) AS basis_pct,
       CASE h.source WHEN 1 THEN 'index' ELSE 'funding_index' END AS index_source
  FROM deribit_ts.dated_futures f
  JOIN deribit.candles_1h b ON b.instrument_id = f.id
                           AND b.ts >= f.listed - interval '1 hour' AND b.ts < f.expiry - interval '1 hour'
  JOIN (SELECT s.index_name, s.ts, (array_agg(s.price ORDER BY s.source, s.perpetual))[1] AS price,
               min(s.source) AS source
          FROM (SELECT x.index_name, x.ts, x.price, 1 AS source, 0 AS perpetual
                  FROM deribit.index_price_history x WHERE x.ts = date_trunc('hour', x.ts)
                UNION ALL
                SELECT p.price_index, fr.ts, fr.index_price, 2, p.id
                  FROM deribit.funding_rate_history fr JOIN deribit.instruments p ON p.id = fr.instrument_id
                 WHERE p.is_perpetual AND fr.index_price > 0 AND fr.ts = date_trunc('hour', fr.ts)) s
         GROUP BY s.index_name, s.ts) h ON h.index_name = f.price_index AND h.ts = b.ts + interval '1 hour'
 WHERE f.currency = 'BTC'"""


def load_history(dsn: str, start: datetime, now: datetime) -> None:
    text = (
        HISTORY_SQL.read_text().replace(":'start'", f"'{start.isoformat()}'").replace(":'now'", f"'{now.isoformat()}'")
    )
    from deribit_ts.db.migrate import split_statements

    with psycopg.connect(dsn) as conn:
        for statement in split_statements(text):
            began = time.perf_counter()
            conn.execute(statement)
            print(f"{time.perf_counter() - began:7.1f} s  {' '.join(statement.split())[:70]}", file=sys.stderr)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL deribit_ts.refresh_rollups()")
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have by the time anyone reads a history this size


def best_of(conn: psycopg.Connection, query: str, params: tuple, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        rows = len(conn.execute(query, params).fetchall())
        times.append(time.perf_counter() - began)
    return min(times), rows


def cases(conn: psycopg.Connection) -> dict[str, tuple[str, str, tuple]]:
    """name -> (query, baseline query over the same rows, parameters)."""
    newest_funding = conn.execute("SELECT max(ts) FROM deribit.funding_rate_history").fetchone()[0]
    newest_candle = conn.execute("SELECT max(covered_until) FROM deribit_ts.watermarks").fetchone()[0]
    return {
        "coverage": (
            "SELECT * FROM deribit.coverage",
            "SELECT dataset, key, range_agg(fetched), sum(rows), count(*) FROM deribit_ts.coverage GROUP BY 1, 2",
            (),
        ),
        "gap_report": ("SELECT * FROM deribit.gap_report", "SELECT count(*) FROM deribit.candles_1m", ()),
        "basis_ts": (
            "SELECT * FROM deribit.basis_term_structure WHERE currency = 'BTC'",
            "SELECT c.* FROM deribit.candles_1h c JOIN deribit.instruments i ON i.id = c.instrument_id "
            "WHERE i.base_currency = 'BTC' AND i.kind = 'future' AND NOT i.is_perpetual",
            (),
        ),
        # The view as it was before its rows were kept: the hourly bars joined to the index on the hour on read.
        "basis_ts_on_read": (
            BASIS_TS_ON_READ,
            "SELECT c.* FROM deribit.candles_1h c JOIN deribit.instruments i ON i.id = c.instrument_id "
            "WHERE i.base_currency = 'BTC' AND i.kind = 'future' AND NOT i.is_perpetual",
            (),
        ),
        "funding_30d": (
            "SELECT * FROM deribit.funding_apr WHERE instrument_name = 'BTC-PERPETUAL' "
            "AND ts > %s - interval '30 days'",
            "SELECT * FROM deribit.funding_rates WHERE instrument_name = 'BTC-PERPETUAL' "
            "AND ts > %s - interval '30 days'",
            (newest_funding,),
        ),
        "sanity_all": ("SELECT * FROM deribit.sanity_violations", "SELECT count(*) FROM deribit.candles_1m", ()),
        "sanity_last_day": (
            "SELECT * FROM deribit.sanity_violations WHERE ts >= %s - interval '1 day'",
            "SELECT count(*) FROM deribit.candles_1m WHERE ts >= %s - interval '1 day'",
            (newest_candle,),
        ),
    }


def measure(dsn: str, repeat: int, only: list[str] | None) -> dict:
    figures: dict = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        figures["candles"] = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]
        figures["span"] = [
            f"{t:%Y-%m-%d}" for t in conn.execute("SELECT min(ts), max(ts) FROM deribit.candles_1m").fetchone()
        ]
        figures["instruments"] = dict(
            conn.execute("SELECT kind, count(*) FROM deribit.instruments GROUP BY kind").fetchall()
        )
        figures["coverage_records"] = conn.execute("SELECT count(*) FROM deribit_ts.coverage").fetchone()[0]
        for name, (query, baseline, params) in cases(conn).items():
            if only and name not in only:
                continue
            seconds, rows = best_of(conn, query, params, repeat)
            base_s, _ = best_of(conn, baseline, params, repeat)
            figures[name] = {
                "rows": rows,
                "seconds": round(seconds, 3),
                "baseline_seconds": round(base_s, 3),
                "ratio": round(seconds / base_s, 1) if base_s else None,
            }
    if not only or "report_html" in only:
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp) / "report.html"
            began = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "deribit-ts"), "report", "--html", str(page), "--dsn", dsn],
                check=True,
                capture_output=True,
                timeout=1800,
            )
            figures["report_html"] = {"seconds": round(time.perf_counter() - began, 1), "bytes": page.stat().st_size}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--start", default="2024-01-01", help="first day of the generated history (UTC)")
    parser.add_argument("--now", default="2025-11-01", help="the history's 'now' (UTC)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query; the best is kept")
    parser.add_argument("--dsn", default=os.environ.get("DERIBIT_TS_DSN"), help="server to create the database on")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database (its DSN is printed)")
    parser.add_argument("--reuse", metavar="DSN", help="measure this already loaded database, load nothing")
    parser.add_argument("--only", action="append", help="measure only these cases (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    now = datetime.fromisoformat(args.now).replace(tzinfo=UTC)
    began = time.perf_counter()
    report: dict = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
    }
    if args.reuse:
        report["figures"] = measure(args.reuse, args.repeat, args.only)
        report["database"] = "given database"
    else:
        with database_server(args.dsn) as (server, where):
            keeper = nullcontext(None) if args.keep else fresh_database(server, "views")
            with keeper as dsn:
                if dsn is None:
                    dsn = keep_database(server)
                load_began = time.perf_counter()
                load_history(dsn, start, now)
                report["load_s"] = round(time.perf_counter() - load_began, 1)
                report["figures"] = measure(dsn, args.repeat, args.only)
                report["database"] = f"{server_version(server)}, {where}"
                if args.keep:
                    report["dsn"] = dsn
    report["load_average"] = os.getloadavg()[0]
    report["total_s"] = round(time.perf_counter() - began, 1)
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    f = report["figures"]
    print(
        f"{report['date']}: history {f['span'][0]}..{f['span'][1]}: {f['candles']:,} candles, instruments "
        f"{f['instruments']}, {f['coverage_records']:,} coverage records; {report['database']}; {report['cpus']} CPUs, "
        f"load average {report['load_average_at_start']:.1f} at the start, {report['load_average']:.1f} at the end; "
        f"best of {args.repeat}"
    )
    for name, fig in f.items():
        if not isinstance(fig, dict) or "seconds" not in fig:
            continue
        target = TARGETS_S.get(name)
        verdict = "" if target is None else ("PASS" if fig["seconds"] <= target else "MISS") + f" (<= {target:g} s)"
        if "baseline_seconds" in fig:
            print(
                f"{name:16} {fig['rows']:>10,} rows {fig['seconds']:9.3f} s   baseline {fig['baseline_seconds']:8.3f} s"
                f"   ratio {fig['ratio']}x  {verdict}"
            )
        else:
            print(f"{name:16} {fig['bytes']:>10,} bytes {fig['seconds']:8.1f} s  {verdict}")
    if "dsn" in report:
        print(f"database kept: {report['dsn']}")
    return 0


def keep_database(server_dsn: str) -> str:
    """A new migrated database that outlives the run (for --keep)."""
    from psycopg import sql

    from deribit_ts.db.migrate import apply_all

    name = f"bench_views_{datetime.now(UTC):%Y%m%d%H%M%S}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    apply_all(dsn)
    return dsn


if __name__ == "__main__":
    sys.exit(main())
