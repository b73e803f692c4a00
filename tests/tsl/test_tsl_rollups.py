"""After a backfill on the Community edition, the continuous aggregates hold the loaded history.

The refresh policies only look at the last days; `deribit_ts.ingest.rollups.refresh_after_run` refreshes
the span a run loaded. Candles are inserted with INSERT here (COPY kills PGlite), and the run's coverage
row is written as the engine writes it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from deribit_ts.db.migrate import apply_all
from deribit_ts.ingest.rollups import refresh_after_run

pytestmark = pytest.mark.tsl

START = datetime(2023, 6, 1, 22, tzinfo=UTC)  # far outside the policies' windows
MINUTES = 600


def materialized(conn, view_name: str) -> list[tuple]:
    schema, table = conn.execute(
        """SELECT materialization_hypertable_schema, materialization_hypertable_name
             FROM timescaledb_information.continuous_aggregates
            WHERE view_schema = 'deribit' AND view_name = %s""", (view_name,)).fetchone()
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchall()


def test_refresh_after_run_materializes_the_loaded_span(tsl_fresh_schema, tsl_connect, tsl_candles):
    apply_all(tsl_fresh_schema)
    with tsl_connect() as conn:
        conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) VALUES ('BTC-PERPETUAL', 'future', '{}')")
        instrument_id = conn.execute("SELECT id FROM deribit.instruments").fetchone()[0]
        tsl_candles.insert(conn, "deribit.candles_1m", tsl_candles.synthetic(START, MINUTES, (instrument_id,)))
        run_id = conn.execute("INSERT INTO deribit_ts.runs (command) VALUES ('test') RETURNING run_id").fetchone()[0]
        conn.execute(
            """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, run_id)
               VALUES ('candles', 'BTC-PERPETUAL', tstzrange(%s, %s), %s, %s, %s)""",
            (START, START + timedelta(minutes=MINUTES), MINUTES, START + timedelta(minutes=MINUTES), run_id))
        assert materialized(conn, "candles_1h") == [(0,)]

    async def refresh() -> list[str]:
        async with await psycopg.AsyncConnection.connect(tsl_fresh_schema, autocommit=True) as aconn:
            return await refresh_after_run(aconn, run_id)

    assert asyncio.run(refresh()) == ["deribit.candles_1h", "deribit.candles_1d"]
    with tsl_connect() as conn:
        assert materialized(conn, "candles_1h") == [(MINUTES // 60,)]  # 10 whole hours
        assert materialized(conn, "candles_1d") == [(2,)]  # the two days the span touches
        expected = tsl_candles.direct_rollup(conn, "deribit.candles_1m", "1 hour")
        got = tsl_candles.rollup_rows(conn, "deribit.candles_1h")
        assert tsl_candles.mismatches(got, expected) == []
