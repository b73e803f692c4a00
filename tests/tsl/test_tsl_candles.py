"""The Community-edition (TSL) SQL deribit-ts relies on, exercised on PGlite's TimescaleDB build.

One hypertable of one-minute candles (2 instruments x 2,500 minutes = 5,000 rows in 1-day chunks), then:
continuous aggregates 1m -> 1h -> 1d refreshed by hand and by policy, and the columnstore policy.
Everything lives in the schema `tsl_candles`, dropped before and after the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.tsl

SCHEMA = "tsl_candles"
CANDLES = f"{SCHEMA}.candles_1m"
INSTRUMENTS = (1, 2)
MINUTES = 2_500
START = datetime(2024, 3, 1, tzinfo=UTC)

CREATE_CANDLES = """
CREATE TABLE tsl_candles.candles_1m (
    instrument_id integer NOT NULL,
    ts            timestamptz NOT NULL,
    open          double precision NOT NULL,
    high          double precision NOT NULL,
    low           double precision NOT NULL,
    close         double precision NOT NULL,
    volume        double precision NOT NULL,
    cost          double precision NOT NULL,
    PRIMARY KEY (instrument_id, ts)
)
"""

# The rollup shape of migrations/0006_rollups_continuous.sql: additive parts only, so layers stack.
CREATE_HOURLY = """
CREATE MATERIALIZED VIEW tsl_candles.candles_1h WITH (timescaledb.continuous) AS
SELECT instrument_id, time_bucket(INTERVAL '1 hour', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, sum(cost) AS cost, count(*) AS candles
FROM tsl_candles.candles_1m
GROUP BY 1, 2
WITH NO DATA
"""

CREATE_DAILY = """
CREATE MATERIALIZED VIEW tsl_candles.candles_1d WITH (timescaledb.continuous) AS
SELECT instrument_id, time_bucket(INTERVAL '1 day', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, sum(cost) AS cost, sum(candles) AS candles
FROM tsl_candles.candles_1h
GROUP BY 1, 2
WITH NO DATA
"""

CREATE_FOUR_HOURLY = """
CREATE MATERIALIZED VIEW tsl_candles.candles_4h WITH (timescaledb.continuous) AS
SELECT instrument_id, time_bucket(INTERVAL '4 hours', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, sum(cost) AS cost, count(*) AS candles
FROM tsl_candles.candles_1m
GROUP BY 1, 2
WITH NO DATA
"""


def _drop_schema(conn) -> None:
    conn.execute("DROP SCHEMA IF EXISTS tsl_candles CASCADE")


@pytest.fixture(scope="module")
def candles(tsl_server, tsl_connect, tsl_candles) -> Iterator[list[tuple[object, ...]]]:
    """The loaded one-minute candles, as inserted."""
    tsl_server.ensure_running()
    rows = tsl_candles.synthetic(START, MINUTES, INSTRUMENTS)
    with tsl_connect() as conn:
        _drop_schema(conn)
        conn.execute("CREATE SCHEMA tsl_candles")
        conn.execute(CREATE_CANDLES)
        conn.execute("SELECT create_hypertable('tsl_candles.candles_1m', by_range('ts', INTERVAL '1 day'))")
        tsl_candles.insert(conn, CANDLES, rows)
    yield rows
    if tsl_server.answers():
        with tsl_connect() as conn:
            _drop_schema(conn)


@pytest.fixture(scope="module")
def hourly(candles, tsl_connect) -> str:
    with tsl_connect() as conn:
        conn.execute(CREATE_HOURLY)
    return f"{SCHEMA}.candles_1h"


def test_candles_load_in_batches_of_100_rows(candles, tsl_connect) -> None:
    with tsl_connect() as conn:
        count, chunks = conn.execute(
            "SELECT (SELECT count(*) FROM tsl_candles.candles_1m), "
            "(SELECT count(*) FROM show_chunks('tsl_candles.candles_1m'))"
        ).fetchone()
    assert count == len(candles) == len(INSTRUMENTS) * MINUTES
    assert chunks == 2  # 2,500 minutes from midnight span two 1-day chunks


def test_hourly_continuous_aggregate_equals_group_by_after_refresh(hourly, tsl_connect, tsl_candles) -> None:
    with tsl_connect() as conn:
        assert tsl_candles.rollup_rows(conn, hourly) == []  # WITH NO DATA, materialized-only by default
        # A refresh refuses to run inside a transaction block: tsl_connect is autocommit.
        conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (hourly,))
        expected = tsl_candles.direct_rollup(conn, CANDLES, "1 hour")
        actual = tsl_candles.rollup_rows(conn, hourly)
    assert len(expected) == len(INSTRUMENTS) * -(-MINUTES // 60)
    assert tsl_candles.mismatches(actual, expected) == []


def test_daily_aggregate_on_the_hourly_one_equals_group_by(hourly, tsl_connect, tsl_candles) -> None:
    with tsl_connect() as conn:
        conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (hourly,))
        conn.execute(CREATE_DAILY)
        conn.execute("CALL refresh_continuous_aggregate('tsl_candles.candles_1d', NULL, NULL)")
        expected = tsl_candles.direct_rollup(conn, CANDLES, "1 day")
        actual = tsl_candles.rollup_rows(conn, f"{SCHEMA}.candles_1d")
        parent = conn.execute(
            "SELECT parent_mat_hypertable_id IS NOT NULL FROM _timescaledb_catalog.continuous_agg "
            "WHERE user_view_schema = 'tsl_candles' AND user_view_name = 'candles_1d'"
        ).fetchone()
    assert parent == (True,)  # a cagg on a cagg, not a second cagg on the base table
    assert len(expected) == len(INSTRUMENTS) * 2
    assert tsl_candles.mismatches(actual, expected) == []


def test_refresh_policy_fills_the_aggregate_when_its_job_runs(candles, tsl_connect, tsl_candles) -> None:
    four_hourly = f"{SCHEMA}.candles_4h"
    with tsl_connect() as conn:
        conn.execute(CREATE_FOUR_HOURLY)
        conn.execute(
            "SELECT add_continuous_aggregate_policy(%s, start_offset => NULL, "
            "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour')",
            (four_hourly,),
        )
        job_id = tsl_candles.job_id(conn, "policy_refresh_continuous_aggregate", SCHEMA, "candles_4h")
        assert tsl_candles.rollup_rows(conn, four_hourly) == []  # no background workers on PGlite
        conn.execute("CALL run_job(%s)", (job_id,))
        expected = tsl_candles.direct_rollup(conn, CANDLES, "4 hours")
        actual = tsl_candles.rollup_rows(conn, four_hourly)
    assert len(expected) == len(INSTRUMENTS) * -(-MINUTES // 240)
    assert tsl_candles.mismatches(actual, expected) == []


def test_columnstore_policy_compresses_chunks_and_data_reads_back_identical(candles, tsl_connect, tsl_candles) -> None:
    read_all = "SELECT instrument_id, ts, open, high, low, close, volume, cost FROM tsl_candles.candles_1m"
    with tsl_connect() as conn:
        size_before = conn.execute("SELECT hypertable_size('tsl_candles.candles_1m')").fetchone()[0]
        conn.execute(
            "ALTER TABLE tsl_candles.candles_1m SET (timescaledb.enable_columnstore, "
            "timescaledb.segmentby = 'instrument_id', timescaledb.orderby = 'ts DESC')"
        )
        conn.execute("CALL add_columnstore_policy('tsl_candles.candles_1m', after => INTERVAL '1 day')")
        job_id = tsl_candles.job_id(conn, "policy_compression", SCHEMA, "candles_1m")
        conn.execute("CALL run_job(%s)", (job_id,))
        compressed = conn.execute(
            "SELECT bool_and(is_compressed), count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_schema = 'tsl_candles' AND hypertable_name = 'candles_1m'"
        ).fetchone()
        stats = conn.execute(
            "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
            "FROM chunk_columnstore_stats('tsl_candles.candles_1m')"
        ).fetchone()
        size_after = conn.execute("SELECT hypertable_size('tsl_candles.candles_1m')").fetchone()[0]
        read_back = conn.execute(read_all + " ORDER BY instrument_id, ts").fetchall()
    assert compressed == (True, 2)
    assert read_back == sorted(candles)
    rows = len(candles)
    print(
        f"\n[tsl] {rows} one-minute candles, 1-day chunks, segmentby instrument_id, orderby ts DESC: "
        f"hypertable_size {size_before / rows:.1f} -> {size_after / rows:.1f} bytes/candle; "
        f"chunk_columnstore_stats {stats[0] / rows:.1f} -> {stats[1] / rows:.1f} bytes/candle "
        f"({stats[0] / stats[1]:.1f}x)"
    )
    assert size_after < size_before
