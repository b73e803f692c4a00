"""deribit-ts migrations on the Community (TSL) edition: PGlite's TimescaleDB build.

The runner must take the TSL branch of every edition-specific migration (continuous aggregates, policies,
columnstore), and what those migrations define must work: policy jobs refresh the rollups and compress
old chunks. The module starts from a database without the project's schemas (tsl_fresh_schema).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deribit_ts.db.migrate import apply_all, load_migrations

pytestmark = pytest.mark.tsl

INSTRUMENTS = (1, 2)
MINUTES = 2_500  # 41h40m: every hour of it lies inside the 1h policy's window (3 days .. 1 hour ago)
OLD_INSTRUMENT = 9  # candles a month old: beyond the 14-day columnstore policy of candles_1m


def _utc_midnight_days_ago(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _ledger(conn) -> dict[str, tuple[str, str]]:
    rows = conn.execute("SELECT name, status, sha256 FROM deribit_ts.schema_migrations ORDER BY version")
    return {name: (status, sha256) for name, status, sha256 in rows}


def _materialization(conn, view_name: str) -> str:
    schema, table = conn.execute(
        """
        SELECT materialization_hypertable_schema, materialization_hypertable_name
        FROM timescaledb_information.continuous_aggregates
        WHERE view_schema = 'deribit' AND view_name = %s
        """,
        (view_name,),
    ).fetchone()
    return f"{schema}.{table}"


@pytest.fixture(scope="module")
def migrated(tsl_fresh_schema: str) -> list:
    """The steps the first apply_all took on a database without deribit-ts schemas."""
    return apply_all(tsl_fresh_schema)


def test_apply_all_applies_every_timescale_migration(migrated, tsl_connect) -> None:
    files = load_migrations()
    tsl_only = {f.name for f in files if f.edition == "timescale"}
    apache_only = {f.name for f in files if f.edition == "apache"}
    assert tsl_only, "expected edition=timescale migrations to test"
    with tsl_connect() as conn:
        ledger = _ledger(conn)
    assert set(ledger) == {f.name for f in files}
    skipped = {name for name, (status, _) in ledger.items() if status == "skipped"}
    assert skipped == apache_only  # nothing the Community edition can run was skipped
    assert {step.file.name for step in migrated if step.action == "apply"} == set(ledger) - apache_only


def test_migrations_define_hierarchical_aggregates_and_policies(migrated, tsl_connect) -> None:
    with tsl_connect() as conn:
        caggs = dict(
            conn.execute(
                """
                SELECT c.view_name, coalesce(parent.view_name, c.hypertable_name)
                FROM timescaledb_information.continuous_aggregates c
                LEFT JOIN timescaledb_information.continuous_aggregates parent
                  ON (parent.materialization_hypertable_schema, parent.materialization_hypertable_name)
                   = (c.hypertable_schema, c.hypertable_name)
                WHERE c.view_schema = 'deribit'
                """
            ).fetchall()
        )
        jobs = set(
            conn.execute(
                "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
                "WHERE hypertable_schema = 'deribit'"
            ).fetchall()
        )
        hypertables = {
            name
            for (name,) in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = 'deribit' AND compression_enabled"
            )
        }
    assert caggs == {
        "candles_1h": "candles_1m",
        "candles_1d": "candles_1h",
        "candles_5m": "candles_1m",
        "candles_15m": "candles_5m",
    }
    assert {("policy_refresh_continuous_aggregate", view) for view in caggs} <= jobs
    assert "candles_1m" in hypertables
    assert {("policy_compression", name) for name in hypertables} <= jobs


def test_second_apply_all_is_a_noop(migrated, tsl_dsn, tsl_connect) -> None:
    with tsl_connect() as conn:
        before = _ledger(conn)
    assert apply_all(tsl_dsn) == []
    with tsl_connect() as conn:
        assert _ledger(conn) == before


def test_policy_jobs_refresh_hourly_and_daily_candles(migrated, tsl_connect, tsl_candles) -> None:
    start = _utc_midnight_days_ago(2)
    rows = tsl_candles.synthetic(start, MINUTES, INSTRUMENTS)
    with tsl_connect() as conn:
        tsl_candles.insert(conn, "deribit.candles_1m", rows)
        hourly_table = _materialization(conn, "candles_1h")
        daily_table = _materialization(conn, "candles_1d")
        assert tsl_candles.rollup_rows(conn, hourly_table) == []
        for view in ("candles_1h", "candles_1d"):  # lower layer first: the daily one reads the hourly one
            conn.execute(
                "CALL run_job(%s)",
                (tsl_candles.job_id(conn, "policy_refresh_continuous_aggregate", "deribit", view),),
            )
        hourly_expected = tsl_candles.direct_rollup(conn, "deribit.candles_1m", "1 hour")
        daily_expected = tsl_candles.direct_rollup(conn, "deribit.candles_1m", "1 day")
        hourly_materialized = tsl_candles.rollup_rows(conn, hourly_table)
        daily_materialized = tsl_candles.rollup_rows(conn, daily_table)
        daily_view = tsl_candles.rollup_rows(conn, "deribit.candles_1d")
    assert len(hourly_expected) == len(INSTRUMENTS) * -(-MINUTES // 60)
    assert tsl_candles.mismatches(hourly_materialized, hourly_expected) == []
    # The daily policy ends a day ago: only the first (complete) day is materialized; the second, still
    # partial, comes from real-time aggregation (materialized_only = false) through the view.
    first_day = [row for row in daily_expected if row["ts"] == start]
    assert len(first_day) == len(INSTRUMENTS)
    assert tsl_candles.mismatches(daily_materialized, first_day) == []
    assert tsl_candles.mismatches(daily_view, daily_expected) == []


def test_columnstore_policy_compresses_only_old_candles(migrated, tsl_connect, tsl_candles) -> None:
    old_rows = tsl_candles.synthetic(_utc_midnight_days_ago(30), 1_440, (OLD_INSTRUMENT,), seed=11)
    read_old = (
        "SELECT instrument_id, ts, open, high, low, close, volume, cost FROM deribit.candles_1m "
        "WHERE instrument_id = %s ORDER BY ts"
    )
    with tsl_connect() as conn:
        tsl_candles.insert(conn, "deribit.candles_1m", old_rows)
        conn.execute("CALL run_job(%s)", (tsl_candles.job_id(conn, "policy_compression", "deribit", "candles_1m"),))
        chunks = conn.execute(
            """
            SELECT range_end < now() - INTERVAL '14 days', is_compressed
            FROM timescaledb_information.chunks
            WHERE hypertable_schema = 'deribit' AND hypertable_name = 'candles_1m'
            """
        ).fetchall()
        read_back = conn.execute(read_old, (OLD_INSTRUMENT,)).fetchall()
    assert any(old for old, _ in chunks) and any(not old for old, _ in chunks)
    assert all(old == compressed for old, compressed in chunks)
    assert read_back == old_rows


def test_every_rollup_counts_its_candles_in_bigint(migrated, tsl_connect) -> None:
    """`candles` is a bigint in every rollup and its public view, as on the Apache edition (the 15-minute and
    daily aggregates sum the level below, and a sum of bigints is numeric unless cast back)."""
    with tsl_connect() as conn:
        types = dict(
            conn.execute(
                """SELECT c.relname, format_type(a.atttypid, a.atttypmod)
                     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                    WHERE c.relnamespace = 'deribit'::regnamespace AND a.attname = 'candles' AND NOT a.attisdropped
                      AND c.relname IN ('candles_5m', 'candles_15m', 'candles_1h', 'candles_1d',
                                        'ohlcv_5m', 'ohlcv_15m', 'ohlcv_1h', 'ohlcv_1d')"""
            ).fetchall()
        )
    assert types == {
        name: "bigint" for level in ("5m", "15m", "1h", "1d") for name in (f"candles_{level}", f"ohlcv_{level}")
    }
