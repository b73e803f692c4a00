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


def record(
    conn: psycopg.Connection, dataset: str, key: str, lo: datetime, hi: datetime, rows: int, filled=None
) -> None:
    """A final window, as the collector records it (filled: an option's filler minutes, [from, until) pairs)."""
    ranges = None if filled is None else "{" + ",".join(f"[{a.isoformat()},{b.isoformat()})" for a, b in filled) + "}"
    conn.execute(
        "SELECT deribit_ts.record_coverage(%s, %s, tstzrange(%s, %s), %s, %s, NULL, %s::tstzmultirange)",
        (dataset, key, lo, hi, rows, hi, ranges),
    )


def collect_windows(conn: psycopg.Connection, ids: dict[str, int], first: int, last: int) -> None:
    """Windows first..last-1 of ten minutes each of a future, an option and DVOL, the way a live collector leaves
    them: a window ends at the exchange's time (mid-minute), the next one first fetches the rest of that minute (a
    sliver without a whole minute, so no row); the option's windows hold mostly fillers, one traded minute in three
    windows; window 5 fell in an outage for the option and DVOL (nothing at all, not even fillers)."""
    for i in range(first, last):
        lo, hi = START + 10 * i * MINUTE, START + 10 * (i + 1) * MINUTE
        cut = hi - 47 * timedelta(seconds=1)  # the window asked up to 09:13 of its ten minutes
        minutes = [lo + m * MINUTE for m in range(10)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO deribit.candles_1m VALUES (%s, %s, 101, 99, 100, 100, 1, 100)",
                [(ids["TST-FUT"], ts) for ts in minutes],
            )
        record(conn, "candles", "TST-FUT", lo, cut, 10)
        record(conn, "candles", "TST-FUT", cut, hi, 0)
        record(conn, "dvol", "TST", lo, cut, 0 if i == 5 else 10)  # (DVOL's rows are not stored here: counts only)
        record(conn, "dvol", "TST", cut, hi, 0)
        if i == 5:
            record(conn, "candles", "TST-1JAN24-100-C", lo, hi, 0)
        elif i % 3 == 1:
            traded = lo + 4 * MINUTE
            conn.execute(
                "INSERT INTO deribit.candles_1m VALUES (%s, %s, 0.01, 0.012, 0.01, 0.011, 2, 0.02)",
                (ids["TST-1JAN24-100-C"], traded),
            )
            record(conn, "candles", "TST-1JAN24-100-C", lo, hi, 1, [(lo, traded), (traded + MINUTE, hi)])
        else:
            record(conn, "candles", "TST-1JAN24-100-C", lo, hi, 0, [(lo, hi)])
    conn.execute("CALL deribit_ts.refresh_rollups()")  # the collector's rollups job (non-empty candle windows merge
    # only once rolled up)


def test_coverage_records_of_a_key_merge_across_slivers_filler_windows_and_outages(new_db):
    """A live collector's windows of one key alternate between windows with rows and windows without: the sliver of
    a minute left after a window that ended mid-minute, an option's windows of fillers only, an outage. They merge
    into one record per key all the same (as many after four times the windows), and the merged record says what
    its windows said: the rows, first and last row, the filler minutes and the minutes the exchange had nothing."""
    with psycopg.connect(new_db, autocommit=True) as conn:
        ids = {
            name: conn.execute(
                """INSERT INTO deribit.instruments (instrument_name, kind, base_currency, creation_ts, expiry, raw)
                   VALUES (%s, %s, 'TST', %s, %s, '{}') RETURNING id""",
                (name, kind, START - timedelta(days=1), START + timedelta(days=30)),
            ).fetchone()[0]
            for name, kind in (("TST-FUT", "future"), ("TST-1JAN24-100-C", "option"))
        }
        records: dict[int, list[tuple[str, str, int]]] = {}
        done = 0
        for windows in (12, 48):
            collect_windows(conn, ids, done, windows)
            done = windows
            conn.execute("SELECT * FROM deribit_ts.compact_bookkeeping(interval '0')")
            records[windows] = conn.execute(
                "SELECT dataset, key, count(*) FROM deribit_ts.coverage GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        merged = conn.execute(
            """SELECT key, fetched, rows, first_row, last_row, filled_minutes, filled, empty FROM deribit_ts.coverage
                WHERE dataset = 'candles' ORDER BY key"""
        ).fetchall()
        # what the records' trigger derives for the merged windows from the table
        conn.execute("UPDATE deribit_ts.coverage SET rows = rows WHERE dataset = 'candles'")
        derived = conn.execute(
            """SELECT key, fetched, rows, first_row, last_row, filled_minutes, filled, empty FROM deribit_ts.coverage
                WHERE dataset = 'candles' ORDER BY key"""
        ).fetchall()
        end = START + 480 * MINUTE
        conn.execute(
            """INSERT INTO deribit_ts.targets (dataset, key, wanted)
               SELECT dataset, key, tstzmultirange(tstzrange(%s, %s)) FROM deribit_ts.coverage GROUP BY 1, 2""",
            (START, end),
        )
        coverage = conn.execute(
            "SELECT dataset, key, rows, empty_ranges, complete FROM deribit.coverage ORDER BY 1, 2"
        ).fetchall()
    # DVOL's slivers merge too; a window of DVOL without rows that spans whole minutes stays apart (the exchange had
    # nothing there, and DVOL's records keep no minutes of their own to say so)
    expected = [("candles", "TST-1JAN24-100-C", 1), ("candles", "TST-FUT", 1), ("dvol", "TST", 3)]
    assert records[12] == records[48] == expected, records
    assert merged == derived, (merged, derived)
    option, future = merged
    assert option[1].lower == future[1].lower == START and option[1].upper == future[1].upper == end
    assert future[2] == 480 and future[5] == 0 and future[7] is None
    traded = [i for i in range(48) if i % 3 == 1 and i != 5]
    assert option[2] == len(traded) and option[5] == 480 - len(traded) - 10, option
    assert [(r.lower, r.upper) for r in option[7]] == [(START + 50 * MINUTE, START + 60 * MINUTE)], option[7]
    assert coverage == [
        ("candles", "TST-1JAN24-100-C", len(traded), 1, True),
        ("candles", "TST-FUT", 480, 0, True),
        ("dvol", "TST", 470, 1, True),
    ], coverage
