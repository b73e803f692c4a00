"""Benchmark: what planning, claiming, the coverage view and a run's summary cost after a day of collector
bookkeeping, after a year of it, and after a year once deribit_ts.compact_bookkeeping has run (what the collector's
hourly `bookkeeping` job keeps it at).

The bookkeeping is generated in SQL the way the collector leaves it: per key and minute one done task, its run
detail (run_tasks) and its coverage record (settled, rolled up), over --keys keys. Each query is timed with
EXPLAIN (ANALYZE, BUFFERS), median of --repeat runs; planning and claiming run in a transaction that is rolled back.
The baseline is the one-day state of the same run: a bounded bookkeeping costs the same after a year.

    .venv/bin/python scripts/bench_bookkeeping.py [--days 365] [--keys 4] [--dsn DSN] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime

import psycopg
from benchlib import database_server, fresh_database

END = datetime(2026, 11, 30, tzinfo=UTC)

_GENERATE = """
WITH run AS (SELECT run_id FROM deribit_ts.runs WHERE command = 'collect' ORDER BY run_id LIMIT 1),
minutes AS (
    SELECT k.key, %(end)s::timestamptz - m * interval '1 minute' AS start
      FROM unnest(%(keys)s::text[]) AS k(key), generate_series(%(first)s::integer, %(last)s::integer) AS m
), made AS (
    INSERT INTO deribit_ts.tasks (dataset, key, range_start, range_end, priority, state, updated_at, created_at)
    SELECT 'candles', key, start, start + interval '1 minute', -1000, 'done', start, start FROM minutes
    RETURNING task_id, key, range_start
), details AS (
    INSERT INTO deribit_ts.run_tasks (run_id, task_id, rows_fetched, inserted, requests, duration)
    SELECT (SELECT run_id FROM run), task_id, 1, 1, 1, interval '50 ms' FROM made
    RETURNING 1
)
INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, fetched_at, run_id, rolled_up_at)
SELECT 'candles', key, tstzrange(range_start, range_start + interval '1 minute'), 1,
       range_start + interval '1 minute', range_start, (SELECT run_id FROM run), range_start FROM made
"""

QUERIES = {
    "coverage view, one key": "SELECT * FROM deribit.coverage WHERE dataset = 'candles' AND key = %(key)s",
    "plan the newest minute": "SELECT deribit_ts.plan_tasks('candles', %(key)s, tstzrange(%(end)s, %(next)s), "
    "interval '25000 minutes', -1000)",
    "claim a task": "SELECT * FROM deribit_ts.claim_task('bench/1/w0', interval '60 s', '{candles}', ARRAY[%(key)s], "
    "-2147483648, -1)",
    "run summary": "SELECT * FROM deribit_ts.run_datasets WHERE run_id = %(run)s",
}


def generate(conn: psycopg.Connection, keys: list[str], first: int, last: int) -> None:
    """Minutes first..last (counted back from END) of every key."""
    step = 50_000
    for lo in range(first, last + 1, step):
        conn.execute(_GENERATE, {"end": END, "keys": keys, "first": lo, "last": min(last, lo + step - 1)})


def timed(conn: psycopg.Connection, query: str, params: dict, repeat: int) -> dict:
    """Median execution time (ms) and shared buffers of EXPLAIN ANALYZE over `repeat` runs, each rolled back."""
    times, buffers = [], []
    for _ in range(repeat):
        with conn.transaction(force_rollback=True):
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params).fetchone()[0][0]
        times.append(plan["Execution Time"])
        top = plan["Plan"]
        buffers.append(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0))
    return {"ms": round(statistics.median(times), 3), "buffers": int(statistics.median(buffers))}


def sizes(conn: psycopg.Connection) -> dict:
    return {
        table: conn.execute(f"SELECT count(*) FROM deribit_ts.{table}").fetchone()[0]  # noqa: S608 (fixed names)
        for table in ("tasks", "run_tasks", "coverage", "run_dataset_totals")
    }


def measure(conn: psycopg.Connection, keys: list[str], run_id: int, repeat: int) -> dict:
    conn.execute("ANALYZE deribit_ts.tasks, deribit_ts.run_tasks, deribit_ts.coverage, deribit_ts.targets")
    params = {"key": keys[0], "end": END, "next": END.replace(minute=1), "run": run_id}
    out = {name: timed(conn, query, params, repeat) for name, query in QUERIES.items()}
    out["rows"] = sizes(conn)
    return out


def compact(conn: psycopg.Connection, keys: list[str], run_id: int, repeat: int) -> dict:
    """One call of deribit_ts.compact_bookkeeping (what one hourly run of the collector's job does), measured."""
    started = time.monotonic()
    names = ("tasks_deleted", "coverage_merged", "processes_deleted")
    done = dict(zip(names, conn.execute("SELECT * FROM deribit_ts.compact_bookkeeping()").fetchone(), strict=True))
    done["seconds"] = round(time.monotonic() - started, 1)
    return {**measure(conn, keys, run_id, repeat), "compaction": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dsn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    keys = ["BTC-PERPETUAL"] + [f"BENCH-{n}" for n in range(1, args.keys)]
    results: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node()}
    with database_server(args.dsn) as (server, where), fresh_database(server, "bookkeeping") as dsn:
        results["server"] = where
        with psycopg.connect(dsn, autocommit=True) as conn:
            run_id = conn.execute(
                "INSERT INTO deribit_ts.runs (command) VALUES ('collect') RETURNING run_id"
            ).fetchone()[0]
            conn.execute(
                """INSERT INTO deribit_ts.targets (dataset, key, wanted)
                   SELECT 'candles', k, tstzmultirange(tstzrange(%s::timestamptz - make_interval(days => %s), %s))
                     FROM unnest(%s::text[]) k""",
                (END, args.days, END, keys),
            )
            day = 1440
            generate(conn, keys, 0, day - 1)
            results["one day"] = measure(conn, keys, run_id, args.repeat)
            started = time.monotonic()
            generate(conn, keys, day, args.days * day - 1)
            results["generate_s"] = round(time.monotonic() - started, 1)
            results[f"{args.days} days"] = measure(conn, keys, run_id, args.repeat)
            results[f"{args.days} days, one compaction"] = compact(conn, keys, run_id, args.repeat)
            while conn.execute("SELECT * FROM deribit_ts.compact_bookkeeping()").fetchone()[0]:
                pass  # the collector's next hourly runs: a batch each
            conn.execute("VACUUM deribit_ts.tasks, deribit_ts.run_tasks, deribit_ts.coverage")
            results[f"{args.days} days, compacted"] = measure(conn, keys, run_id, args.repeat)
    if args.json:
        print(json.dumps(results, default=str))
        return
    print(f"# {results['date']} on {results['machine']} ({results['server']}), {args.keys} keys")
    states = ["one day", f"{args.days} days", f"{args.days} days, one compaction", f"{args.days} days, compacted"]
    print(f"{'query':26}" + "".join(f"{s:>30}" for s in states))
    for name in QUERIES:
        cells = [f"{results[s][name]['ms']:>12.3f} ms {results[s][name]['buffers']:>8} buf" for s in states]
        print(f"{name:26}" + "".join(f"{c:>30}" for c in cells))
    for table in results["one day"]["rows"]:
        print(f"{'rows ' + table:26}" + "".join(f"{results[s]['rows'][table]:>30,}" for s in states))
    print(f"first compaction: {results[states[2]]['compaction']}; generating took {results['generate_s']} s")


if __name__ == "__main__":
    main()
