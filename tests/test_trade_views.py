"""The research views over the trade tape, on planted trades with rows worked out by hand."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import psycopg
import pytest

EXPIRY = datetime(2024, 3, 15, 8, tzinfo=UTC)
DAY = date(2024, 3, 14)
CALL, PUT = "BTC-15MAR24-60000-C", "BTC-15MAR24-50000-P"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 3, 14, hour, minute, tzinfo=UTC)


# (instrument, ts, trade_id, seq, price, amount, direction, index, iv, liquidation, block_trade_id)
TRADES = [
    (CALL, at(10), "1", 1, 0.05, 1.0, "buy", 60000.0, 50.0, None, None),
    (CALL, at(11), "2", 2, 0.06, 3.0, "sell", 62000.0, 60.0, None, "B1"),
    (PUT, at(12), "3", 1, 0.02, 2.0, "buy", 60000.0, 70.0, None, None),
    (CALL, datetime(2024, 3, 15, 1, tzinfo=UTC), "4", 3, 0.07, 1.0, "buy", 61000.0, 55.0, None, None),
    ("BTC-PERPETUAL", at(13), "5", 1, 60000.0, 100.0, "sell", 60010.0, None, "T", None),
    ("BTC-PERPETUAL", at(13, 1), "6", 2, 60001.0, 50.0, "buy", 60010.0, None, None, None),
]


@pytest.fixture(scope="module")
def planted(db: str) -> str:
    with psycopg.connect(db) as conn:
        conn.execute(
            """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, expiry, strike,
                                                option_type, instrument_type, raw)
               VALUES (%s, 'option', false, 'BTC', %s, 60000, 'call', 'reversed', '{}'),
                      (%s, 'option', false, 'BTC', %s, 50000, 'put', 'reversed', '{}'),
                      ('BTC-PERPETUAL', 'future', true, 'BTC', NULL, NULL, NULL, 'reversed', '{}')
               ON CONFLICT DO NOTHING""",
            (CALL, EXPIRY, PUT, EXPIRY),
        )
        for name, ts, trade_id, seq, price, amount, direction, index, iv, liq, block in TRADES:
            conn.execute(
                """INSERT INTO deribit.trades (instrument_name, ts, trade_id, trade_seq, price, amount, direction,
                                               index_price, iv, liquidation, block_trade_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (name, ts, trade_id, seq, price, amount, direction, index, iv, liq, block),
            )
        for name in (CALL, PUT):
            conn.execute(
                "SELECT deribit_ts.refresh_trade_days(%s, %s, %s)", (name, at(0), datetime(2024, 3, 16, tzinfo=UTC))
            )
        for name in (CALL, PUT, "BTC-PERPETUAL"):
            conn.execute(
                "SELECT deribit_ts.refresh_trade_seq_gaps(%s, %s, %s)",
                (name, at(0), datetime(2024, 3, 16, tzinfo=UTC)),
            )
    return db


def test_trade_smile_1d(planted: str) -> None:
    with psycopg.connect(planted) as conn:
        rows = conn.execute(
            "SELECT * FROM deribit.trade_smile_1d WHERE currency = 'BTC' AND day = %s ORDER BY expiry, strike", (DAY,)
        ).fetchall()
    lm_call = (math.log(60000 / 60000) * 1 + math.log(60000 / 62000) * 3) / 4
    want = [
        ("BTC", DAY, EXPIRY, 50000.0, "put", 1, 2.0, 70.0, 70.0, 70.0, math.log(50000 / 60000)),
        ("BTC", DAY, EXPIRY, 60000.0, "call", 2, 4.0, 57.5, 50.0, 60.0, lm_call),
    ]
    assert [r[:10] for r in rows] == [w[:10] for w in want]
    assert [r[10] for r in rows] == pytest.approx([w[10] for w in want], rel=1e-12)


def test_option_flow_1d(planted: str) -> None:
    with psycopg.connect(planted) as conn:
        rows = conn.execute("SELECT * FROM deribit.option_flow_1d WHERE currency = 'BTC' ORDER BY day").fetchall()
    assert rows == [
        ("BTC", DAY, EXPIRY, 4.0, 2.0, 0.5, 3.0, 3),
        ("BTC", date(2024, 3, 15), EXPIRY, 1.0, 0.0, None, 0.0, 1),
    ]


def test_option_trades_and_liquidations(planted: str) -> None:
    with psycopg.connect(planted) as conn:
        first = conn.execute(
            """SELECT currency, expiry, strike, option_type, days_to_expiry, log_moneyness, delta, usd_notional
                 FROM deribit.option_trades WHERE trade_id = '1'"""
        ).fetchone()
        count = conn.execute("SELECT count(*) FROM deribit.option_trades").fetchone()[0]
        liquidations = conn.execute(
            "SELECT instrument_name, trade_id, liquidation, is_perpetual, usd_notional FROM deribit.liquidations"
        ).fetchall()
    years = (EXPIRY - at(10)).total_seconds() / (365 * 86400)
    d1 = (0.5 * 0.5**2 * years) / (0.5 * math.sqrt(years))  # at the money: ln(F/K) = 0
    delta = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    assert first[:4] == ("BTC", EXPIRY, 60000.0, "call")
    assert first[4] == pytest.approx(22 / 24, rel=1e-12)
    assert first[5] == 0.0
    assert first[6] == pytest.approx(delta, rel=1e-9)
    assert first[7] == 60000.0
    assert count == 4
    assert liquidations == [("BTC-PERPETUAL", "5", "T", True, 100.0)]


def test_candle_trades_mismatch_finds_exactly_the_planted_candle(planted: str) -> None:
    """Three candles of CALL: 10:00 agrees with its trade, 11:00 has a wrong high, 12:00 has volume but no trade;
    only minutes the trades and candles coverage both hold (10:00-11:59) are judged."""
    with psycopg.connect(planted) as conn:
        iid = conn.execute("SELECT id FROM deribit.instruments WHERE instrument_name = %s", (CALL,)).fetchone()[0]
        conn.execute(
            """INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
               VALUES (%s, %s, 0.05, 0.05, 0.05, 0.05, 1, 0.05), (%s, %s, 0.06, 0.07, 0.06, 0.06, 3, 0.18),
                      (%s, %s, 0.06, 0.06, 0.06, 0.06, 1, 0.06)""",
            (iid, at(10), iid, at(11), iid, at(12, 30)),
        )
        for dataset in ("trades", "candles"):
            conn.execute(
                """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until)
                   VALUES (%s, %s, tstzrange(%s, %s), 0, %s)""",
                (dataset, CALL, at(9), at(12), at(12)),
            )
        rows = conn.execute(
            """SELECT instrument_name, ts, rule FROM deribit.sanity_violations
                WHERE rule = 'candle_trades_mismatch'"""
        ).fetchall()
    assert rows == [(CALL, at(11), "candle_trades_mismatch")]


def test_trade_seq_hole_in_gap_report(planted: str) -> None:
    """PUT's trade_seq 1 then 4 inside a fetched, settled range: one hole of two trades; CALL's 1, 2, 3 none."""
    with psycopg.connect(planted) as conn:
        conn.execute(
            """INSERT INTO deribit.trades (instrument_name, ts, trade_id, trade_seq, price, amount, direction)
               VALUES (%s, %s, '7', 4, 0.03, 1, 'buy')""",
            (PUT, at(15)),
        )
        conn.execute("SELECT deribit_ts.refresh_trade_seq_gaps(%s, %s, %s)", (PUT, at(15), at(16)))
        for name in (CALL, PUT):
            conn.execute(
                """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until)
                   VALUES ('trades', %s, tstzrange(%s, %s), 0, %s)""",
                (name, at(12), at(20), at(20)),
            )
        rows = conn.execute(
            """SELECT dataset, instrument_name, gap_start, gap_end, cause FROM deribit.gap_report
                WHERE dataset = 'trades'"""
        ).fetchall()
    assert rows == [("trades", PUT, at(12), at(15), "trade_seq_hole")]
