"""Rollups on the Apache edition (the embedded cluster): materialized tables kept current incrementally.

Every write to deribit.candles_1m marks the (instrument, UTC day) it touched, in the writer's transaction; the
views deribit.ohlcv_5m/15m/1h/1d are exact before and after `refresh`; the refresh recomputes exactly the marked
days. Expected values are the rollup computed straight from the one-minute rows with GROUP BY.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import cli_command, run_cli
from psycopg.rows import dict_row

from deribit_ts.ingest import rollups
from deribit_ts.ingest.candles import CANDLES
from deribit_ts.ingest.load import copy_rows, upsert_rows
from deribit_ts.sim import SimConfig, run_in_thread

LEVELS = {"5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour", "1d": "1 day"}
START = datetime(2024, 1, 1, 22, 17, tzinfo=UTC)  # off every bucket boundary, across midnight
MINUTES = 2 * 1440 + 333


def synthetic(instrument_id: int, start: datetime, minutes: int, seed: int) -> list[tuple]:
    """Candles with distinct values per minute (so first/last and max/min are checked for real)."""
    rows, price = [], 40_000.0 + 1000 * seed
    for m in range(minutes):
        wobble = ((m * 7919 + seed * 104729) % 97) - 48
        open_, close = price, price + wobble * 0.5
        rows.append(
            (
                instrument_id,
                start + timedelta(minutes=m),
                open_,
                max(open_, close) + (m % 5),
                min(open_, close) - (m % 3),
                close,
                1.0 + (m % 11) * 0.25,
                100.0 + m,
            )
        )
        price = close
    return rows


def add_instruments(conn, *names: str) -> list[int]:
    return [
        conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) VALUES (%s, 'future', '{}') RETURNING id",
            (name,),
        ).fetchone()[0]
        for name in names
    ]


def direct(conn, bucket: str) -> list[dict]:
    """The expected rollup: GROUP BY over the one-minute rows, named like the public views."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT i.instrument_name, time_bucket(%s::interval, c.ts) AS ts, first(c.open, c.ts) AS open,
                      max(c.high) AS high, min(c.low) AS low, last(c.close, c.ts) AS close,
                      sum(c.volume) AS volume, sum(c.cost) AS cost, count(*) AS candles
                 FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
                GROUP BY 1, 2 ORDER BY 1, 2""",
            (bucket,),
        ).fetchall()


def view(conn, level: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM deribit.ohlcv_{level} ORDER BY instrument_name, ts").fetchall()


def materialized(conn, level: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""SELECT i.instrument_name, m.ts, m.open, m.high, m.low, m.close, m.volume, m.cost, m.candles
                  FROM deribit_ts.rollup_{level} m JOIN deribit.instruments i ON i.id = m.instrument_id
                 ORDER BY 1, 2"""
        ).fetchall()


def same(actual: list[dict], expected: list[dict]) -> bool:
    """Exact for keys, OHLC and counts; float sums to 1e-12 (the levels add in a different order)."""
    if [(r["instrument_name"], r["ts"]) for r in actual] != [(r["instrument_name"], r["ts"]) for r in expected]:
        return False
    for got, want in zip(actual, expected, strict=True):
        if any(got[c] != want[c] for c in ("open", "high", "low", "close", "candles")):
            return False
        if any(not math.isclose(got[c], want[c], rel_tol=1e-12) for c in ("volume", "cost")):
            return False
    return True


def assert_exact(conn, *, refreshed: bool) -> None:
    for level, bucket in LEVELS.items():
        expected = direct(conn, bucket)
        assert same(view(conn, level), expected), f"ohlcv_{level} differs from the one-minute rows"
        if refreshed:
            assert same(materialized(conn, level), expected), f"rollup_{level} differs from the one-minute rows"


def marks(conn) -> list[tuple]:
    return conn.execute("SELECT DISTINCT instrument_id, day FROM deribit_ts.rollup_dirty ORDER BY 1, 2").fetchall()


def load(dsn: str, rows: list[tuple], *, upsert: bool = False):
    """Write rows as the backfill's loader does (binary COPY, or the staging upsert), in one transaction."""

    async def run():
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            async with conn.transaction():
                if upsert:
                    return await upsert_rows(conn, CANDLES, rows)
                await copy_rows(conn, CANDLES, rows)

    return asyncio.run(run())


@pytest.fixture
def conn(new_db):
    with psycopg.connect(new_db, autocommit=True) as connection:
        yield connection


def test_the_loaders_writes_mark_their_days_and_the_views_are_exact_before_refresh(new_db, conn):
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1) + synthetic(eth, START + timedelta(days=1), 600, 2))
    days = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    assert marks(conn) == [
        (btc, days[0]),
        (btc, days[1]),
        (btc, days[2]),
        (btc, days[3]),
        (eth, days[1]),
        (eth, days[2]),
    ]
    assert_exact(conn, refreshed=False)  # aggregated on read for the marked days
    assert materialized(conn, "1h") == []


def test_refresh_materializes_exactly_the_marked_days(new_db, conn):
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1) + synthetic(eth, START + timedelta(days=1), 600, 2))
    summary = rollups.refresh(new_db)
    assert summary["edition"] == "apache"
    assert summary["days"] == 6
    assert summary["rollups"] == list(rollups.ROLLUPS)
    # Every bucket is new: rows written = buckets of each level.
    expected_counts = {level: len(direct(conn, bucket)) for level, bucket in LEVELS.items()}
    assert summary["rows"] == expected_counts
    assert marks(conn) == []
    assert_exact(conn, refreshed=True)
    again = rollups.refresh(conn)
    assert again["days"] == 0 and again["rollups"] == []


def test_a_revision_recomputes_only_its_day_and_only_changed_buckets_are_written(new_db, conn):
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1) + synthetic(eth, START, 600, 2))
    rollups.refresh(new_db)
    # The exchange corrects one candle (a late trade): the upsert revises it, one row.
    minute = datetime(2024, 1, 2, 13, 7, tzinfo=UTC)
    old, neighbour = conn.execute(
        "SELECT * FROM deribit.candles_1m WHERE instrument_id = %s AND ts IN (%s, %s) ORDER BY ts",
        (btc, minute, minute + timedelta(minutes=1)),
    ).fetchall()
    revised = (*old[:3], old[3] + 5000.0, *old[4:6], old[6] + 3.0, old[7])
    result = load(new_db, [revised, neighbour], upsert=True)  # the unchanged neighbour is not a revision
    assert (result.inserted, result.revised) == (0, 1)
    assert marks(conn) == [(btc, datetime(2024, 1, 2, tzinfo=UTC))]
    assert view(conn, "1h") != materialized(conn, "1h")  # the view already shows the revision
    assert_exact(conn, refreshed=False)
    summary = rollups.refresh(new_db)
    assert summary["days"] == 1
    assert summary["rows"] == {"5m": 1, "15m": 1, "1h": 1, "1d": 1}  # the buckets holding 13:07, nothing else
    assert_exact(conn, refreshed=True)


def test_a_refresh_after_an_unchanged_reload_rewrites_nothing(new_db, conn):
    """Days marked again with the same candles (a re-load, an UPDATE that changes nothing) are recomputed and
    written nowhere: the float sums of a bucket, added in another order, differ in their last bits only."""
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1) + synthetic(eth, START, 600, 2))
    rollups.refresh(new_db)
    # What another summation order leaves: every stored sum a few units in the last place away.
    for level in LEVELS:
        conn.execute(f"UPDATE deribit_ts.rollup_{level} SET volume = volume * (1 + 4e-16), cost = cost * (1 - 4e-16)")
    stored = {level: materialized(conn, level) for level in LEVELS}
    conn.execute("UPDATE deribit.candles_1m SET volume = volume")  # every row written again, unchanged
    assert len(marks(conn)) == 6
    summary = rollups.refresh(new_db)
    assert summary["days"] == 6
    assert summary["rows"] == {"5m": 0, "15m": 0, "1h": 0, "1d": 0}
    assert {level: materialized(conn, level) for level in LEVELS} == stored
    # A real change of a sum, however small in money, is written: one bucket per level.
    conn.execute(
        "UPDATE deribit.candles_1m SET volume = volume + 0.001 WHERE instrument_id = %s AND ts = '2024-01-02 13:07Z'",
        (btc,),
    )
    assert rollups.refresh(new_db)["rows"] == {"5m": 1, "15m": 1, "1h": 1, "1d": 1}
    assert_exact(conn, refreshed=True)


def test_batches_of_one_instrument_and_of_many_give_the_exact_rollups(new_db, conn):
    """The refresh works the marked days in batches (each (instrument, day) aggregated on its own); batch
    boundaries that split instruments and days anywhere give the same tables as one batch."""
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1) + synthetic(eth, START + timedelta(hours=5), MINUTES, 2))
    summary = conn.execute("SELECT deribit_ts.refresh_materialized_rollups(false, 3)").fetchone()[0]
    assert summary["days"] == 7  # BTC's 4 days and ETH's 3, worked in 3 batches
    assert_exact(conn, refreshed=True)
    daily = conn.execute(
        "SELECT instrument_id, ts, candles FROM deribit_ts.rollup_1d ORDER BY instrument_id, ts"
    ).fetchall()
    day = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    assert daily == [
        (btc, day[0], 103),  # from 22:17
        (btc, day[1], 1440),
        (btc, day[2], 1440),
        (btc, day[3], 230),
        (eth, day[1], 1243),  # from 03:17
        (eth, day[2], 1440),
        (eth, day[3], 530),
    ]


def test_deleted_candles_remove_their_buckets(new_db, conn):
    (btc,) = add_instruments(conn, "BTC-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1))
    rollups.refresh(new_db)
    conn.execute("DELETE FROM deribit.candles_1m WHERE ts >= '2024-01-03 05:00Z' AND ts < '2024-01-03 06:00Z'")
    assert rollups.refresh(new_db)["rows"] == {"5m": 12, "15m": 4, "1h": 1, "1d": 1}
    assert_exact(conn, refreshed=True)
    hours = [r["ts"].hour for r in view(conn, "1h") if r["ts"].date() == datetime(2024, 1, 3).date()]
    assert 5 not in hours and 4 in hours and 6 in hours


def test_full_rebuild_gives_the_same_tables(new_db, conn):
    (btc,) = add_instruments(conn, "BTC-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1))
    rollups.refresh(new_db)
    conn.execute("UPDATE deribit_ts.rollup_1h SET high = -1")  # damage no trigger knows about
    summary = rollups.refresh(new_db, full=True)
    assert summary["days"] == 4
    assert_exact(conn, refreshed=True)


def test_a_refresh_needs_an_autocommit_connection(new_db):
    with psycopg.connect(new_db) as plain, pytest.raises(ValueError, match="autocommit"):
        rollups.refresh(plain)


def test_the_ohlcv_query_reads_one_instrument_through_the_index(new_db, conn):
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")
    load(new_db, synthetic(btc, START, MINUTES, 1) + synthetic(eth, START, MINUTES, 2))
    rollups.refresh(new_db)
    conn.execute("ANALYZE")
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN SELECT * FROM deribit.ohlcv_1d WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY ts DESC LIMIT 3"
        )
    )
    # The rollup is read for (instrument_id = <that id>) (an index scan at any real size), not joined whole.
    assert "(instrument_id = i.id)" in plan and "Hash Join" not in plan
    rows = conn.execute(
        "SELECT ts, candles FROM deribit.ohlcv_1d WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY ts DESC LIMIT 3"
    )
    # 2024-01-01 holds 22:17-24:00 (103 minutes), then two full days, then the remaining 230 minutes.
    assert rows.fetchall() == [
        (datetime(2024, 1, 4, tzinfo=UTC), 230),
        (datetime(2024, 1, 3, tzinfo=UTC), 1440),
        (datetime(2024, 1, 2, tzinfo=UTC), 1440),
    ]


def test_refresh_cli(new_db, conn):
    (btc,) = add_instruments(conn, "BTC-PERPETUAL")
    load(new_db, synthetic(btc, START, 200, 1))  # across midnight: two days
    result = run_cli("refresh", "--json", "--dsn", new_db)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["edition"], summary["days"]) == ("apache", 2)
    # the sanity findings too: the first refresh judges every candle, the next only what changed
    assert summary["sanity"]["full"] and summary["sanity"]["violations_stored"] == 0
    text = run_cli("refresh", "--dsn", new_db)
    assert text.returncode == 0 and "up to date" in text.stdout
    assert "sanity findings refreshed (the last day and 0 changed instrument-day(s))" in text.stdout


def test_the_rollups_are_refreshed_while_the_body_runs(new_db, conn):
    """refreshing_meanwhile: what is written while the body runs (a backfill's fetching) is rolled up before
    the body ends, so the refresh at the run's end has nothing of it left."""
    btc, eth = add_instruments(conn, "BTC-PERPETUAL", "ETH-PERPETUAL")

    async def body() -> rollups.Meanwhile:
        async with rollups.refreshing_meanwhile(new_db, pause_s=0.05) as meanwhile:
            for instrument, seed in ((btc, 1), (eth, 2)):
                await asyncio.to_thread(load, new_db, synthetic(instrument, START, MINUTES, seed))
                deadline = time.monotonic() + 60
                while marks(conn) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert marks(conn) == []  # consumed while the body still runs
        return meanwhile

    meanwhile = asyncio.run(body())
    assert meanwhile.refreshes >= 2 and meanwhile.days == 8
    assert_exact(conn, refreshed=True)
    assert rollups.refresh(new_db)["days"] == 0  # nothing left for the end


def test_a_refresh_meanwhile_that_fails_leaves_the_work_to_the_end(new_db, conn, caplog):
    """The refresh loop cannot reach its database: the body runs to its end all the same, and says so at info
    level only (a run that lost its database reports that in its own one line)."""
    caplog.set_level(logging.INFO, logger="deribit_ts.ingest.rollups")
    closed = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"

    async def body() -> rollups.Meanwhile:
        async with rollups.refreshing_meanwhile(closed, pause_s=0.01) as meanwhile:
            await asyncio.sleep(0.3)
        return meanwhile

    assert asyncio.run(body()).refreshes == 0
    assert "refreshing the rollups while fetching stopped" in caplog.text


def test_every_rollup_counts_its_candles_in_bigint(conn):
    """`candles` is a bigint in every rollup and its public view, on this edition as on the Community one."""
    types = dict(
        conn.execute(
            """SELECT c.relname, format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                WHERE c.relnamespace = 'deribit'::regnamespace AND a.attname = 'candles' AND NOT a.attisdropped
                  AND c.relname IN ('candles_5m', 'candles_15m', 'candles_1h', 'candles_1d',
                                    'ohlcv_5m', 'ohlcv_15m', 'ohlcv_1h', 'ohlcv_1d')"""
        ).fetchall()
    )
    assert types == {name: "bigint" for level in LEVELS for name in (f"candles_{level}", f"ohlcv_{level}")}


NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


@pytest.mark.slow
def test_a_backfill_ends_with_rollups_equal_to_its_candles_even_after_a_killed_run(new_db, conn):
    """A run killed before its refresh leaves marks committed with its windows; the next run's refresh
    includes them, and its revisions of the unsettled tail too."""
    args = [
        "backfill",
        "candles",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        "2023-10-01",
        "--until",
        "2024-03-01T12:20",
        "--quiet",
        "--workers",
        "2",
        "--dsn",
        new_db,
    ]
    env = {**os.environ, "DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", latency_ms=30)) as slow:
        victim = subprocess.Popen(cli_command(*args, "--api-url", slow.url), env=env, stderr=subprocess.DEVNULL)
        deadline = datetime.now() + timedelta(seconds=60)
        while datetime.now() < deadline and not conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        partial = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]
        assert partial > 0
        assert_exact(conn, refreshed=False)
        resumed = subprocess.run(
            cli_command(*args, "--json", "--api-url", slow.url), env=env, capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr
    refresh = json.loads(resumed.stdout.strip().splitlines()[-1])["rollups_refresh"]
    assert set(refresh) == {"final_s", "meanwhile"} and set(refresh["meanwhile"]) == {"refreshes", "seconds", "days"}
    assert marks(conn) == []
    assert conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0] > partial
    assert_exact(conn, refreshed=True)
