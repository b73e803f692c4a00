"""The core schema: stable public views, natural keys, value ranges, chunking, rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

PUBLIC_VIEWS = {
    "ohlcv_1m": ["instrument_name", "ts", "open", "high", "low", "close", "volume", "cost"],
    "funding_rates": ["instrument_name", "ts", "interest_1h", "interest_8h", "index_price", "prev_index_price"],
    "index_prices": ["index_name", "ts", "price"],
    "option_snapshots": [
        "instrument_name",
        "ts",
        "underlying_price",
        "mark_price",
        "mark_iv",
        "bid_iv",
        "ask_iv",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        "open_interest",
    ],
}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def conn(db):
    with psycopg.connect(db, autocommit=True) as connection:
        connection.execute(
            """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, raw)
               VALUES ('BTC-PERPETUAL', 'future', true, 'BTC', '{}'),
                      ('BTC-29MAR24-60000-C', 'option', false, 'BTC', '{}')"""
        )
        yield connection


def instrument_id(conn, name: str) -> int:
    return conn.execute("SELECT id FROM deribit.instruments WHERE instrument_name = %s", (name,)).fetchone()[0]


@pytest.mark.parametrize("view,columns", PUBLIC_VIEWS.items())
def test_public_view_columns(conn, view, columns):
    got = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'deribit' AND table_name = %s "
            "ORDER BY ordinal_position",
            (view,),
        )
    ]
    assert got[: len(columns)] == columns  # later columns may only be appended
    ts_type = conn.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'deribit' AND table_name = %s "
        "AND column_name = 'ts'",
        (view,),
    ).fetchone()[0]
    assert ts_type == "timestamp with time zone"


def test_candles_are_unique_on_their_natural_key(conn):
    pid = instrument_id(conn, "BTC-PERPETUAL")
    row = (pid, T0, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)
    insert = "INSERT INTO deribit.candles_1m VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    conn.execute(insert, row)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, row)
    conn.execute(insert + " ON CONFLICT DO NOTHING", row)
    count = conn.execute("SELECT count(*) FROM deribit.ohlcv_1m WHERE instrument_name = 'BTC-PERPETUAL'").fetchone()
    assert count == (1,)


def test_extreme_values_round_trip_exactly(conn):
    oid = instrument_id(conn, "BTC-29MAR24-60000-C")
    extremes = (1.7976931348623157e308, -2.2250738585072014e-308, 123456789.123456789, -0.000123456789012345)
    conn.execute(
        """INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, delta, gamma, vega, theta)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (oid, T0, *extremes),
    )
    got = conn.execute(
        "SELECT delta, gamma, vega, theta FROM deribit.option_snapshots WHERE instrument_name = %s",
        ("BTC-29MAR24-60000-C",),
    ).fetchone()
    assert got == extremes


def test_hypertables_and_chunk_intervals(conn):
    got = dict(
        conn.execute(
            """SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions
           WHERE hypertable_schema = 'deribit'"""
        ).fetchall()
    )
    expected = {
        "candles_1m": timedelta(days=7),
        "funding_rate_history": timedelta(days=365),
        "index_price_history": timedelta(days=30),
        "option_ticker_snapshots": timedelta(days=7),
        "volatility_index": timedelta(days=30),
    }
    # Other hypertables may be added by later migrations; these keep their intervals.
    assert {name: got.get(name) for name in expected} == expected


def test_hourly_rollup_matches_the_minutes(conn):
    pid = instrument_id(conn, "BTC-PERPETUAL")
    start = T0 + timedelta(days=3)
    rows = [
        (pid, start + timedelta(minutes=m), 100.0 + m, 101.0 + m, 99.0 + m, 100.5 + m, 1.0, 100.0) for m in range(120)
    ]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO deribit.candles_1m VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
    got = conn.execute(
        """SELECT ts, open, high, low, close, volume, candles FROM deribit.ohlcv_1h
           WHERE instrument_name = 'BTC-PERPETUAL' AND ts >= %s ORDER BY ts""",
        (start,),
    ).fetchall()
    assert got == [
        (start, 100.0, 160.0, 99.0, 159.5, 60.0, 60),
        (start + timedelta(hours=1), 160.0, 220.0, 159.0, 219.5, 60.0, 60),
    ]
