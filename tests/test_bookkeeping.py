"""Bookkeeping stays bounded: a long run of collector-like cycles leaves as many rows after compaction as a short one,
run summaries keep their sums, coverage records of a key merge, and concurrent coverage writers never overlap.

The cycles are driven through the same SQL functions the collector calls (plan, claim, progress, finish), against a
real TimescaleDB; deribit_ts.compact_bookkeeping is what the collector's hourly `bookkeeping` job runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg

START = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def cycle(conn: psycopg.Connection, run_id: int, minute: int) -> None:
    """One collector cycle of two keys: plan the newest minute, claim it, record its window, finish it."""
    start = START + minute * MINUTE
    for dataset, key in (("index", "btc_usd"), ("dvol", "BTC")):
        conn.execute(
            "SELECT deribit_ts.plan_tasks(%s, %s, tstzrange(%s, %s), interval '1 day', -1000)",
            (dataset, key, start, start + MINUTE),
        )
        task_id = conn.execute(
            "SELECT task_id FROM deribit_ts.claim_task('w', interval '60 s', %s, NULL, -2147483648, -1)", ([dataset],)
        ).fetchone()[0]
        conn.execute(
            "SELECT deribit_ts.task_progress(%s, 'w', interval '60 s', %s, %s, %s, %s, 1, 1, 0, 1, 0)",
            (task_id, run_id, start, start + MINUTE, start + MINUTE),
        )
        conn.execute("SELECT deribit_ts.finish_task(%s, 'w', %s, NULL, interval '1 s')", (task_id, run_id))


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {
        table: conn.execute(f"SELECT count(*) FROM deribit_ts.{table}").fetchone()[0]  # noqa: S608 (fixed names)
        for table in ("tasks", "run_tasks", "coverage", "run_dataset_totals", "collector_processes")
    }


def test_bookkeeping_after_many_cycles_is_as_small_as_after_a_few(new_db):
    with psycopg.connect(new_db, autocommit=True) as conn:
        run_id = conn.execute("INSERT INTO deribit_ts.runs (command) VALUES ('collect') RETURNING run_id").fetchone()[0]
        for n in range(5):  # dead processes of earlier starts
            conn.execute(
                """INSERT INTO deribit_ts.collector_processes (process_id, host, pid, role, beat_at)
                   VALUES (%s, 'h', %s, 'stopped', now() - interval '2 days')""",
                (f"h/{n}/0", n),
            )
        after: dict[int, dict[str, int]] = {}
        minute = 0
        for cycles in (60, 240):
            while minute < cycles:
                cycle(conn, run_id, minute)
                minute += 1
            grown = counts(conn)
            conn.execute("SELECT * FROM deribit_ts.compact_bookkeeping(interval '0')")
            after[cycles] = counts(conn)
        summary = conn.execute(
            "SELECT dataset, tasks, rows_fetched, requests FROM deribit_ts.run_datasets WHERE run_id = %s ORDER BY 1",
            (run_id,),
        ).fetchall()
        coverage = conn.execute(
            "SELECT dataset, key, rows, complete, missing FROM deribit.coverage ORDER BY 1"
        ).fetchall()
        records = conn.execute(
            "SELECT dataset, lower(fetched), upper(fetched), rows FROM deribit_ts.coverage ORDER BY 1"
        ).fetchall()
    assert grown["tasks"] >= 2 * 180 and grown["coverage"] >= 2 * 180, grown  # what the cycles wrote
    assert after[60] == after[240], after  # bounded: four times the cycles, the same rows once compacted
    assert after[240]["tasks"] == 0 and after[240]["run_tasks"] == 0 and after[240]["collector_processes"] == 0
    # the run's summary keeps its sums
    assert summary == [("dvol", 240, 240, 240), ("index", 240, 240, 240)], summary
    # one record per key, the rows they hold added
    end = START + 240 * MINUTE
    assert records == [("dvol", START, end, 240), ("index", START, end, 240)], records
    assert [(d, k, r, c) for d, k, r, c, _ in coverage] == [("dvol", "BTC", 240, True), ("index", "btc_usd", 240, True)]


def test_concurrent_coverage_writers_leave_no_overlapping_records(new_db):
    """Eight writers record overlapping ranges of one key at once, each holding its transaction open a moment:
    the records never overlap (so deribit.coverage.rows never counts a row twice)."""
    writers = 8
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with psycopg.connect(new_db) as conn:
                barrier.wait(timeout=30)
                start = START + i * 3 * MINUTE
                conn.execute(
                    "SELECT deribit_ts.record_coverage('index', 'race', tstzrange(%s, %s), 0, %s, NULL)",
                    (start, start + 10 * MINUTE, start + 10 * MINUTE),
                )
                conn.execute("SELECT pg_sleep(0.3)")  # the others write meanwhile
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 (reported by the test below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with psycopg.connect(new_db) as conn:
        overlaps = conn.execute(
            """SELECT count(*) FROM deribit_ts.coverage a JOIN deribit_ts.coverage b
                 ON a.dataset = b.dataset AND a.key = b.key AND a.coverage_id < b.coverage_id AND a.fetched && b.fetched
                WHERE a.key = 'race'"""
        ).fetchone()[0]
        covered = conn.execute("SELECT range_agg(fetched) FROM deribit_ts.coverage WHERE key = 'race'").fetchone()[0]
    assert overlaps == 0
    assert len(covered) == 1 and covered[0].lower == START and covered[0].upper == START + 31 * MINUTE, covered
