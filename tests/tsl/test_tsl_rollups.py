"""On the Community edition, the continuous aggregates hold every candle loaded, whichever run loaded it.

The refresh policies only look at the last days; `deribit_ts.ingest.rollups.refresh_after_run` (the SQL procedure
deribit_ts.refresh_rollups) refreshes every continuous aggregate over what Timescale's invalidation log says
changed, including what a killed or interrupted run loaded and never refreshed.
A "run" here writes what the engine writes in one window: candles (INSERT, since COPY kills PGlite) and the
coverage row that proves them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from deribit_ts.ingest.rollups import refresh_after_run

pytestmark = pytest.mark.tsl

ROLLUPS = ["deribit.candles_5m", "deribit.candles_15m", "deribit.candles_1h", "deribit.candles_1d"]
LEVELS = (("candles_5m", "5 minutes"), ("candles_15m", "15 minutes"), ("candles_1h", "1 hour"), ("candles_1d", "1 day"))
# Far outside the policies' windows, so only refresh_after_run can materialize them.
KILLED_RUN_START = datetime(2023, 3, 1, 10, tzinfo=UTC)
LATER_RUN_START = datetime(2023, 6, 1, 22, tzinfo=UTC)
MINUTES = 600


def materialization(conn, view_name: str) -> str:
    schema, table = conn.execute(
        """SELECT materialization_hypertable_schema, materialization_hypertable_name
             FROM timescaledb_information.continuous_aggregates
            WHERE view_schema = 'deribit' AND view_name = %s""",
        (view_name,),
    ).fetchone()
    return f"{schema}.{table}"


def add_instrument(conn, name: str) -> int:
    return conn.execute(
        "INSERT INTO deribit.instruments (instrument_name, kind, raw) VALUES (%s, 'future', '{}') RETURNING id", (name,)
    ).fetchone()[0]


def start_run(conn) -> int:
    return conn.execute("INSERT INTO deribit_ts.runs (command) VALUES ('test') RETURNING run_id").fetchone()[0]


def load_as_a_run(conn, candles, instrument_id: int, start: datetime, minutes: int, *, seed: int = 7) -> int:
    """Candles and their coverage row, as one run's window commits them; returns the run's id. The run row
    stays 'running' and nothing is refreshed: what a run killed before its refresh leaves behind."""
    run_id = start_run(conn)
    name = conn.execute("SELECT instrument_name FROM deribit.instruments WHERE id = %s", (instrument_id,)).fetchone()[0]
    candles.insert(conn, "deribit.candles_1m", candles.synthetic(start, minutes, (instrument_id,), seed=seed))
    end = start + timedelta(minutes=minutes)
    conn.execute(
        """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, run_id)
           VALUES ('candles', %s, tstzrange(%s, %s), %s, %s, %s)""",
        (name, start, end, minutes, end, run_id),
    )
    return run_id


def refresh(dsn: str, run_id: int) -> list[str]:
    async def call() -> list[str]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
            return await refresh_after_run(aconn, run_id)

    return asyncio.run(call())


def assert_rollups_match_candles(conn, candles) -> None:
    """The materialized rollups and the views agree with the rollup computed straight from candles_1m."""
    for view, bucket in LEVELS:
        expected = candles.direct_rollup(conn, "deribit.candles_1m", bucket)
        assert candles.mismatches(candles.rollup_rows(conn, materialization(conn, view)), expected) == []
        assert candles.mismatches(candles.rollup_rows(conn, f"deribit.{view}"), expected) == []


def test_refresh_after_run_materializes_the_loaded_span(tsl_migrated, tsl_connect, tsl_candles):
    with tsl_connect() as conn:
        run_id = load_as_a_run(conn, tsl_candles, add_instrument(conn, "BTC-PERPETUAL"), LATER_RUN_START, MINUTES)
        assert tsl_candles.rollup_rows(conn, materialization(conn, "candles_1h")) == []
    assert refresh(tsl_migrated, run_id) == ROLLUPS
    with tsl_connect() as conn:
        assert len(tsl_candles.rollup_rows(conn, materialization(conn, "candles_1h"))) == MINUTES // 60
        assert len(tsl_candles.rollup_rows(conn, materialization(conn, "candles_1d"))) == 2  # the span's 2 days
        assert_rollups_match_candles(conn, tsl_candles)


def test_refresh_covers_what_a_killed_run_loaded(tsl_migrated, tsl_connect, tsl_candles):
    with tsl_connect() as conn:
        btc, eth = add_instrument(conn, "BTC-PERPETUAL"), add_instrument(conn, "ETH-PERPETUAL")
        load_as_a_run(conn, tsl_candles, btc, KILLED_RUN_START, 300, seed=3)  # killed: never refreshed
        later_run = load_as_a_run(conn, tsl_candles, eth, LATER_RUN_START, MINUTES)
        # A window where the exchange had nothing: no candles, nothing to roll up.
        conn.execute(
            """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, run_id)
               VALUES ('candles', 'ETH-PERPETUAL', tstzrange('2022-01-01', '2022-01-02'), 0, '2022-01-02', %s)""",
            (later_run,),
        )
    assert refresh(tsl_migrated, later_run) == ROLLUPS
    with tsl_connect() as conn:
        # Both runs' hours and days: the killed run's are older than the later run's, below the watermark
        # that the later refresh set, so neither the real-time part nor a policy would ever add them.
        assert len(tsl_candles.rollup_rows(conn, materialization(conn, "candles_1h"))) == 300 // 60 + MINUTES // 60
        assert_rollups_match_candles(conn, tsl_candles)
        marks = conn.execute(
            "SELECT rows > 0, rolled_up_at IS NOT NULL FROM deribit_ts.coverage ORDER BY lower(fetched)"
        ).fetchall()
    assert marks == [(False, False), (True, True), (True, True)]
    with tsl_connect() as conn:
        next_run = start_run(conn)
    with tsl_connect() as conn:
        before = tsl_candles.rollup_rows(conn, materialization(conn, "candles_1h"))
    # Nothing changed: the refresh is a no-op (Timescale's invalidation log is empty) and changes nothing.
    assert refresh(tsl_migrated, next_run) == ROLLUPS
    with tsl_connect() as conn:
        assert tsl_candles.rollup_rows(conn, materialization(conn, "candles_1h")) == before


def test_a_later_revision_of_rolled_up_history_is_refreshed(tsl_migrated, tsl_connect, tsl_candles):
    with tsl_connect() as conn:
        btc = add_instrument(conn, "BTC-PERPETUAL")
        first_run = load_as_a_run(conn, tsl_candles, btc, LATER_RUN_START, MINUTES)
    refresh(tsl_migrated, first_run)
    with tsl_connect() as conn:
        # A re-fetch revises one hour of already rolled-up history (the settling tail), in a run killed
        # before its refresh.
        revised_hour = LATER_RUN_START + timedelta(hours=2)
        killed_run = start_run(conn)
        conn.execute(
            "UPDATE deribit.candles_1m SET high = high + 1000, volume = volume + 1 WHERE ts >= %s AND ts < %s",
            (revised_hour, revised_hour + timedelta(hours=1)),
        )
        conn.execute(
            """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, run_id)
               VALUES ('candles', 'BTC-PERPETUAL', tstzrange(%s, %s), 60, %s, %s)""",
            (revised_hour, revised_hour + timedelta(hours=1), revised_hour + timedelta(hours=1), killed_run),
        )
        next_run = start_run(conn)
    assert refresh(tsl_migrated, next_run) == ROLLUPS
    with tsl_connect() as conn:
        assert_rollups_match_candles(conn, tsl_candles)
