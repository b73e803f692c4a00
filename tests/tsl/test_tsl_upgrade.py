"""A database migrated on the Apache edition, then served by a Community (TSL) server: `apply_all` applies the
migrations it skipped for the edition, and the rollups become continuous aggregates that hold the history
loaded under Apache.

The PGlite server runs under the Community license, which cannot change in a running session
(`SET timescaledb.license` is refused), so the Apache state is produced by running the runner's own Apache
plan (`plan(conn, "apache", ...)`) here: the same files, statement by statement, and the same ledger rows
that apply_all writes on an Apache server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from deribit_ts.db.migrate import apply_all, create_ledger, load_migrations, load_repeatables, plan, split_statements
from deribit_ts.ingest.rollups import refresh_after_run

pytestmark = pytest.mark.tsl

START = datetime(2023, 6, 1, 22, tzinfo=UTC)  # far outside the refresh policies' windows
MINUTES = 600
INSTRUMENT = "BTC-PERPETUAL"
ALL_ROLLUPS = ["deribit.candles_5m", "deribit.candles_15m", "deribit.candles_1h", "deribit.candles_1d"]


def migrate_as_apache(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_ledger(conn)
        for step in plan(conn, "apache", load_migrations(), load_repeatables()):
            # every file the Apache plan applies runs in one transaction (a skipped TSL file may not)
            assert step.action == "skip" or step.file.transactional
            with conn.transaction():
                if step.action != "skip":
                    for statement in split_statements(step.file.text):
                        conn.execute(statement)
                if step.file.version is None:
                    conn.execute(
                        "INSERT INTO deribit_ts.schema_repeatables (name, sha256) VALUES (%s, %s)",
                        (step.file.name, step.file.sha256),
                    )
                else:
                    conn.execute(
                        """INSERT INTO deribit_ts.schema_migrations (version, name, sha256, status, edition)
                           VALUES (%s, %s, %s, %s, 'apache')""",
                        (
                            step.file.version,
                            step.file.name,
                            step.file.sha256,
                            "skipped" if step.action == "skip" else "applied",
                        ),
                    )


def ledger(conn) -> dict[str, tuple[str, str]]:
    return {
        name: (status, edition)
        for name, status, edition in conn.execute(
            "SELECT name, status, edition FROM deribit_ts.schema_migrations ORDER BY version"
        )
    }


def continuous_aggregates(conn) -> dict[str, str]:
    """{cagg: what it is built on} in schema deribit."""
    return dict(
        conn.execute(
            """SELECT c.view_name, coalesce(parent.view_name, c.hypertable_name)
             FROM timescaledb_information.continuous_aggregates c
             LEFT JOIN timescaledb_information.continuous_aggregates parent
               ON (parent.materialization_hypertable_schema, parent.materialization_hypertable_name)
                = (c.hypertable_schema, c.hypertable_name)
            WHERE c.view_schema = 'deribit'"""
        ).fetchall()
    )


def ohlcv(conn, view: str) -> list[tuple]:
    query = sql.SQL("SELECT instrument_name, ts, open, high, low, close, candles FROM {} ORDER BY ts")
    return conn.execute(query.format(sql.Identifier("deribit", view))).fetchall()


def expected_ohlcv(conn, candles, bucket: str) -> list[tuple]:
    return [
        (INSTRUMENT, r["ts"], r["open"], r["high"], r["low"], r["close"], r["candles"])
        for r in candles.direct_rollup(conn, "deribit.candles_1m", bucket)
    ]


def refresh(dsn: str, run_id: int) -> list[str]:
    async def call() -> list[str]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
            return await refresh_after_run(aconn, run_id)

    return asyncio.run(call())


@pytest.fixture(scope="module")
def apache_database(tsl_fresh_schema: str, tsl_candles) -> tuple[str, int]:
    """The DSN of a database in the Apache state holding one run's candles, and that run's id."""
    migrate_as_apache(tsl_fresh_schema)
    with psycopg.connect(tsl_fresh_schema, autocommit=True) as conn:
        instrument_id = conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) VALUES (%s, 'future', '{}') RETURNING id",
            (INSTRUMENT,),
        ).fetchone()[0]
        tsl_candles.insert(conn, "deribit.candles_1m", tsl_candles.synthetic(START, MINUTES, (instrument_id,)))
        run_id = conn.execute("INSERT INTO deribit_ts.runs (command) VALUES ('test') RETURNING run_id").fetchone()[0]
        end = START + timedelta(minutes=MINUTES)
        conn.execute(
            """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, run_id)
               VALUES ('candles', %s, tstzrange(%s, %s), %s, %s, %s)""",
            (INSTRUMENT, START, end, MINUTES, end, run_id),
        )
    return tsl_fresh_schema, run_id


def test_the_apache_state_has_fallback_views_and_skipped_tsl_migrations(apache_database, tsl_connect, tsl_candles):
    dsn, run_id = apache_database
    with tsl_connect() as conn:
        status = ledger(conn)
        assert status["0005_rollups_fallback.sql"] == ("applied", "apache")
        assert status["0006_rollups_continuous.sql"] == ("skipped", "apache")
        assert status["0007_columnstore.sql"] == ("skipped", "apache")
        assert continuous_aggregates(conn) == {}
        assert ohlcv(conn, "ohlcv_1h") == expected_ohlcv(conn, tsl_candles, "1 hour")  # plain views, on read
        assert status["0009_rollups_materialized.sql"] == ("applied", "apache")
        assert status["0010_rollups_continuous_fine.sql"] == ("skipped", "apache")
    # The Apache rollups are materialized tables, refreshed from the days the trigger marked.
    assert refresh(dsn, run_id) == ALL_ROLLUPS
    with tsl_connect() as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.rollup_1h").fetchone()[0] == MINUTES // 60
        assert ohlcv(conn, "ohlcv_1h") == expected_ohlcv(conn, tsl_candles, "1 hour")


def test_apply_all_on_the_community_server_applies_what_was_skipped(apache_database, tsl_connect, tsl_candles):
    dsn, run_id = apache_database
    steps = apply_all(dsn)
    applied = {s.file.name: s.reason for s in steps if s.action == "apply"}
    community_only = {f.name for f in load_migrations() if f.edition == "timescale"}
    assert {"0006_rollups_continuous.sql", "0007_columnstore.sql", "0010_rollups_continuous_fine.sql"} <= community_only
    assert applied == dict.fromkeys(community_only, "previously skipped for the edition")
    assert {s.file.name for s in steps if s.action == "reapply"} == {f.name for f in load_repeatables()}
    with tsl_connect() as conn:
        status = ledger(conn)
        assert status["0006_rollups_continuous.sql"] == ("applied", "timescale")
        assert status["0007_columnstore.sql"] == ("applied", "timescale")
        assert status["0005_rollups_fallback.sql"] == ("applied", "apache")
        assert continuous_aggregates(conn) == {
            "candles_1h": "candles_1m",
            "candles_1d": "candles_1h",
            "candles_5m": "candles_1m",
            "candles_15m": "candles_5m",
        }
        # The Apache machinery is gone: no marking trigger, no materialized tables.
        assert conn.execute(
            "SELECT to_regclass('deribit_ts.rollup_dirty'), to_regclass('deribit_ts.rollup_1h')"
        ).fetchone() == (None, None)
        assert (
            conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'candles_1m_mark_rollups%'").fetchone()[0]
            == 0
        )
        jobs = set(
            conn.execute(
                "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
                "WHERE hypertable_schema = 'deribit'"
            )
        )
        assert {
            ("policy_refresh_continuous_aggregate", "candles_1h"),
            ("policy_refresh_continuous_aggregate", "candles_1d"),
            ("policy_compression", "candles_1m"),
        } <= jobs
        # The public views were re-created on the continuous aggregates (0006 dropped them with the old
        # rollups) and answer from real-time aggregation before any refresh.
        assert ohlcv(conn, "ohlcv_1h") == expected_ohlcv(conn, tsl_candles, "1 hour")
        assert ohlcv(conn, "ohlcv_1d") == expected_ohlcv(conn, tsl_candles, "1 day")
    assert apply_all(dsn) == []  # upgraded: nothing left to do

    # The first refresh on the Community server materializes the history loaded under Apache.
    assert refresh(dsn, run_id) == ALL_ROLLUPS
    with tsl_connect() as conn:
        hourly_table = conn.execute(
            """SELECT materialization_hypertable_schema || '.' || materialization_hypertable_name
                 FROM timescaledb_information.continuous_aggregates
                WHERE view_schema = 'deribit' AND view_name = 'candles_1h'"""
        ).fetchone()[0]
        expected = tsl_candles.direct_rollup(conn, "deribit.candles_1m", "1 hour")
        assert tsl_candles.mismatches(tsl_candles.rollup_rows(conn, hourly_table), expected) == []
        assert ohlcv(conn, "ohlcv_1h") == expected_ohlcv(conn, tsl_candles, "1 hour")
        assert ohlcv(conn, "ohlcv_1d") == expected_ohlcv(conn, tsl_candles, "1 day")
