"""Benchmark: the data-quality views over a whole one-minute history.

By default BTC-PERPETUAL's simulated history (outages, filler candles and bad ticks included; over four million
candles) is written straight into a fresh, migrated database with COPY, with the coverage records a backfill
would leave (one per 5,000-candle window, so every outage is "fetched, the exchange had nothing"). With --reuse
DSN an already loaded database is measured instead: the full history of every instrument (about 51 million
candles) is built by `scripts/bench_views.py --start 2018-08-14 --now 2026-12-01 --dsn DSN --keep`.

First the sanity findings are judged and stored from scratch (`deribit_ts.refresh_sanity(true)`, what the first
refresh after an upgrade does), then an incremental refresh with nothing new, then one after a candle in the
middle of the history was written again (a re-loaded day). Then each query is run --repeat
times and the best time kept (a warm cache, as a report a user runs twice), next to a baseline read of the same
candles in the same run (a count(*): the rows read once, no work per row), so the ratio says how close to reading
the rows once a report comes, whatever the machine and its load:

    gaps             gap_report WHERE instrument_name = ...         vs count(*) of the instrument's candles
    sanity           sanity_violations WHERE instrument_name = ...  vs the same
    sanity_day       ... AND ts in one day                          vs count(*) of its candles that day
    coverage         coverage WHERE key = ...                       vs count(*) of the instrument's candles
    sanity_all       SELECT * FROM deribit.sanity_violations        vs count(*) of every candle
    sanity_month     sanity_violations, the last 30 days            vs count(*) of their candles
    sanity_last_day  sanity_violations, the last day                vs count(*) of its candles
    judged_on_read   every rule judged on read (what the view did before its findings were kept; run once)

Targets at full history: the whole view within 10 s, a month within 1 s, the last day of every instrument
within 0.2 s; the gap report of one instrument in about a second.

    .venv/bin/python scripts/bench_quality.py [--now 2026-09-01] [--repeat 3] [--json] [--dsn DSN | --reuse DSN]

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
TARGETS_S = {"gaps": TARGET_GAPS_S, "sanity_all": 10.0, "sanity_month": 1.0, "sanity_last_day": 0.2}


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
        conn.execute("CALL deribit_ts.refresh_rollups()")  # as the backfill does, before the sanity refresh
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


def timed(dsn: str, query: str) -> tuple[float, object]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        began = time.perf_counter()
        value = conn.execute(query).fetchone()[0]
        return time.perf_counter() - began, value


def cases(dsn: str, instrument: str) -> dict[str, tuple[str, str, tuple]]:
    """name -> (query, baseline over the same candles, parameters)."""
    with psycopg.connect(dsn) as conn:
        start, end = conn.execute(
            "SELECT min(ts), max(ts) FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id "
            "WHERE i.instrument_name = %s",
            (instrument,),
        ).fetchone()
        newest = conn.execute("SELECT max(covered_until) FROM deribit_ts.watermarks").fetchone()[0] or end
    day = start + (end - start) / 2
    one = "FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id WHERE i.instrument_name = %s"
    return {
        "gaps": (
            "SELECT * FROM deribit.gap_report WHERE instrument_name = %s",
            f"SELECT count(*) {one}",
            (instrument,),
        ),
        "sanity": (
            "SELECT * FROM deribit.sanity_violations WHERE instrument_name = %s",
            f"SELECT count(*) {one}",
            (instrument,),
        ),
        "sanity_day": (
            "SELECT * FROM deribit.sanity_violations WHERE instrument_name = %s AND ts >= %s AND ts < %s",
            f"SELECT count(*) {one} AND c.ts >= %s AND c.ts < %s",
            (instrument, day, day + timedelta(days=1)),
        ),
        "coverage": ("SELECT * FROM deribit.coverage WHERE key = %s", f"SELECT count(*) {one}", (instrument,)),
        "sanity_all": ("SELECT * FROM deribit.sanity_violations", "SELECT count(*) FROM deribit.candles_1m", ()),
        "sanity_month": (
            "SELECT * FROM deribit.sanity_violations WHERE ts >= %s - interval '30 days'",
            "SELECT count(*) FROM deribit.candles_1m WHERE ts >= %s - interval '30 days'",
            (newest,),
        ),
        "sanity_last_day": (
            "SELECT * FROM deribit.sanity_violations WHERE ts >= %s - interval '1 day'",
            "SELECT count(*) FROM deribit.candles_1m WHERE ts >= %s - interval '1 day'",
            (newest,),
        ),
    }


def reload_one_day(dsn: str, instrument: str) -> dict:
    """One candle in the middle of the instrument's history written again with its volume and cost changed (a
    re-load), the rollups refreshed as a backfill does, then the sanity refresh: it judges that day and its
    neighbours again, nothing else."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """UPDATE deribit.candles_1m c SET volume = c.volume + 1, cost = c.cost + c.close
                 FROM deribit.instruments i, LATERAL (
                      SELECT min(m.ts) + (max(m.ts) - min(m.ts)) / 2 AS mid FROM deribit.candles_1m m
                       WHERE m.instrument_id = i.id) h
                WHERE i.instrument_name = %s AND c.instrument_id = i.id
                  AND c.ts = (SELECT n.ts FROM deribit.candles_1m n WHERE n.instrument_id = i.id AND n.ts >= h.mid
                               ORDER BY n.ts LIMIT 1)""",
            (instrument,),
        )
        conn.execute("CALL deribit_ts.refresh_rollups()")
    seconds, summary = timed(dsn, "SELECT deribit_ts.refresh_sanity()")
    return {"seconds": round(seconds, 3), "summary": summary}


def measure(dsn: str, instrument: str, repeat: int) -> dict:
    """Store the findings from scratch, refresh with nothing new, then every case against its baseline."""
    figures: dict = {}
    with psycopg.connect(dsn) as conn:
        figures["candles"] = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]
        figures["instruments"] = dict(conn.execute("SELECT kind, count(*) FROM deribit.instruments GROUP BY 1"))
    seconds, summary = timed(dsn, "SELECT deribit_ts.refresh_sanity(true)")
    figures["refresh_full"] = {"seconds": round(seconds, 2), "summary": summary}
    seconds, summary = timed(dsn, "SELECT deribit_ts.refresh_sanity()")
    figures["refresh_nothing_new"] = {"seconds": round(seconds, 3), "summary": summary}
    figures["refresh_reloaded_day"] = reload_one_day(dsn, instrument)
    for name, (query, baseline, params) in cases(dsn, instrument).items():
        t, rows = best_of(dsn, query, params, repeat)
        base, _ = best_of(dsn, baseline, params, repeat)
        figures[name] = {
            "rows": len(rows),
            "seconds": round(t, 4),
            "baseline_seconds": round(base, 4),
            "ratio": round(t / base, 2) if base else None,
            "spikes": sum(1 for r in rows if r[3:4] == ("spike",)) if name.startswith("sanity") else None,
        }
    t, judged = timed(dsn, "SELECT count(*) FROM deribit_ts.sanity_judged")
    base = figures["sanity_all"]["baseline_seconds"]
    figures["judged_on_read"] = {
        "rows": judged,
        "seconds": round(t, 2),
        "baseline_seconds": base,
        "ratio": round(t / base, 2) if base else None,
    }
    return figures


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
    parser.add_argument("--reuse", metavar="DSN", help="measure this already loaded database, load nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    report: dict = {**machine(), "load_average_start": os.getloadavg()[0]}  # date, machine, python
    if args.reuse:
        report["database"] = f"{server_version(args.reuse)}, given database"
        report["figures"] = measure(args.reuse, INSTRUMENT, args.repeat)
    else:
        now = datetime.fromisoformat(args.now).replace(tzinfo=UTC)
        market = SimMarket(SimConfig(now=now))
        with database_server(args.dsn) as (server, where), fresh_database(server, "quality") as dsn:
            load_began = time.perf_counter()
            candles, start, end = load_history(dsn, market, now)
            report["load_s"] = round(time.perf_counter() - load_began, 1)
            report["history"] = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"
            report["figures"] = measure(dsn, INSTRUMENT, args.repeat)
            report["database"] = f"{server_version(server)}, {where}"
            report["outages_in_history"] = sum(
                1 for a, b in market.outage_windows() if a < end.timestamp() * 1000 and b > start.timestamp() * 1000
            )
    report["load_average_end"] = os.getloadavg()[0]
    report["total_s"] = round(time.perf_counter() - began, 1)
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    f = report["figures"]
    print(f"deribit-ts quality benchmark: {f['candles']:,} one-minute candles, instruments {f['instruments']}")
    print(
        f"{report['date']} on {report['machine']}, load average {report['load_average_start']:.1f} at the start, "
        f"{report['load_average_end']:.1f} at the end"
    )
    print(f"database: {report['database']}; best of {args.repeat} runs each, warm cache\n")
    print(
        f"sanity findings judged from scratch: {f['refresh_full']['seconds']:.1f} s, "
        f"{f['refresh_full']['summary'].get('violations_stored')} stored; "
        f"a refresh with nothing new: {f['refresh_nothing_new']['seconds']:.3f} s; after a re-loaded day: "
        f"{f['refresh_reloaded_day']['seconds']:.3f} s ({f['refresh_reloaded_day']['summary'].get('days_changed')} "
        "day changed)\n"
    )
    print(f"{'query':<18}{'rows':>10}{'seconds':>10}{'baseline s':>12}{'ratio':>8}  target")
    for name, fig in f.items():
        if not isinstance(fig, dict) or "baseline_seconds" not in fig:
            continue
        target = TARGETS_S.get(name)
        verdict = "" if target is None else ("PASS" if fig["seconds"] <= target else "MISS") + f" (<= {target:g} s)"
        print(
            f"{name:<18}{fig['rows']:>10,}{fig['seconds']:>10.3f}{fig['baseline_seconds']:>12.3f}"
            f"{fig['ratio'] or 0:>8.2f}  {verdict}"
        )
    print(f"\nbenchmark total {report['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
