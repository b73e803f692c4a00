"""The options views over planted snapshot rounds, with exact expected rows: option_chain_latest, iv_smile,
iv_term_structure (ATM interpolated in log-moneyness) and iv_skew (25-delta, interpolated in delta with and without
premium adjustment, none where a wing has no option on one side of 25 delta)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

T1 = datetime(2024, 3, 1, 12, tzinfo=UTC)
T2 = T1 + timedelta(minutes=5)
NEAR = datetime(2024, 3, 8, 8, tzinfo=UTC)  # 6.83 days after T1
FAR = datetime(2024, 3, 29, 8, tzinfo=UTC)
GONE = datetime(2024, 3, 1, 12, 3, tzinfo=UTC)  # expires between the two rounds

# (currency, expiry, strike, type, forward, mark_iv, delta) of the latest round T2
LATEST = [
    ("BTC", NEAR, 90.0, "put", 105.0, 70.0, -0.08),
    ("BTC", NEAR, 100.0, "put", 105.0, 60.0, -0.30),  # below the forward: the smile's put, ATM bracket below
    ("BTC", NEAR, 100.0, "call", 105.0, 50.0, 0.70),  # ITM call: not in the smile; strike 100 averages 50/60
    ("BTC", NEAR, 110.0, "call", 105.0, 54.0, 0.30),  # ATM bracket above
    ("BTC", NEAR, 110.0, "put", 105.0, 58.0, -0.70),
    ("BTC", NEAR, 120.0, "call", 105.0, 57.0, 0.20),
    ("BTC", NEAR, 95.0, "put", 105.0, 64.0, -0.20),
    ("BTC", FAR, 100.0, "call", 104.0, 50.0, 0.60),  # wings too thin: the calls jump from delta 0.60 to 0.10
    ("BTC", FAR, 130.0, "call", 104.0, 55.0, 0.10),
    ("BTC", FAR, 100.0, "put", 104.0, 52.0, -0.40),
    ("ETH", NEAR, 5.0, "call", 3.5, 80.0, 0.25),  # no strike below the forward: no ATM, no skew
]


def _name(currency: str, expiry: datetime, strike: float, kind: str) -> str:
    return f"{currency}-{expiry.day}{expiry.strftime('%b').upper()}{expiry:%y}-{strike:g}-{kind[0].upper()}"


@pytest.fixture(scope="module")
def conn(db):
    with psycopg.connect(db, autocommit=True) as connection:
        rows = LATEST + [("BTC", GONE, 100.0, "call", 105.0, 40.0, 0.5)]
        for currency, expiry, strike, kind, *_ in rows:
            connection.execute(
                """INSERT INTO deribit.instruments (instrument_name, kind, base_currency, expiry, strike, option_type,
                                                    raw) VALUES (%s, 'option', %s, %s, %s, %s, '{}')
                   ON CONFLICT DO NOTHING""",
                (_name(currency, expiry, strike, kind), currency, expiry, strike, kind),
            )

        def plant(ts: datetime, rows: list[tuple]) -> None:
            for currency, expiry, strike, kind, forward, iv, delta in rows:
                connection.execute(
                    """INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, quote_ts, underlying_price,
                           mark_price, mark_iv, delta, greeks_source)
                       SELECT id, %s, %s, %s, 0.01, %s, %s, 'ticker' FROM deribit.instruments
                        WHERE instrument_name = %s""",
                    (ts, ts, forward, iv, delta, _name(currency, expiry, strike, kind)),
                )
            for currency in sorted({r[0] for r in rows}):
                connection.execute(
                    "INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only) "
                    "VALUES (%s, %s, %s, false)",
                    (currency, ts, sum(r[0] == currency for r in rows)),
                )

        # an older round: different IVs, plus an option that expires before the latest round
        plant(
            T1,
            [(c, e, k, t, f + 1, iv + 10, d) for c, e, k, t, f, iv, d in LATEST]
            + [("BTC", GONE, 100.0, "call", 105.0, 40.0, 0.5)],
        )
        plant(T2, LATEST + [("BTC", GONE, 100.0, "call", 105.0, 40.0, 0.5)])  # GONE: quoted, yet expired at T2
        yield connection


def test_chain_latest_is_the_last_round_of_each_currency_live_options_only(conn) -> None:
    got = conn.execute("""SELECT currency, instrument_name, ts, mark_iv, days_to_expiry, moneyness, log_moneyness
                            FROM deribit.option_chain_latest ORDER BY instrument_name""").fetchall()
    expected = sorted(
        (c, _name(c, e, k, t), T2, iv, (e - T2).total_seconds() / 86400, k / f, math.log(k / f))
        for c, e, k, t, f, iv, _ in LATEST
    )
    assert [r[:4] for r in got] == [r[:4] for r in expected]
    for row, want in zip(got, expected, strict=True):
        assert [float(v) for v in row[4:]] == pytest.approx(want[4:], abs=1e-12)


def test_smile_is_the_out_of_the_money_options_of_every_round(conn) -> None:
    got = conn.execute(
        """SELECT expiry, strike, option_type, log_moneyness, mark_iv, delta FROM deribit.iv_smile
                           WHERE currency = 'BTC' AND ts = %s ORDER BY expiry, strike""",
        (T2,),
    ).fetchall()
    assert got == [
        (NEAR, 90.0, "put", math.log(90 / 105), 70.0, -0.08),
        (NEAR, 95.0, "put", math.log(95 / 105), 64.0, -0.20),
        (NEAR, 100.0, "put", math.log(100 / 105), 60.0, -0.30),
        (NEAR, 110.0, "call", math.log(110 / 105), 54.0, 0.30),
        (NEAR, 120.0, "call", math.log(120 / 105), 57.0, 0.20),
        (FAR, 100.0, "put", math.log(100 / 104), 52.0, -0.40),
        (FAR, 130.0, "call", math.log(130 / 104), 55.0, 0.10),
    ]
    assert conn.execute("SELECT count(DISTINCT ts) FROM deribit.iv_smile WHERE currency = 'BTC'").fetchone() == (2,)
    newest = conn.execute("SELECT ts FROM deribit.iv_smile WHERE currency = 'BTC' ORDER BY ts DESC LIMIT 20").fetchall()
    assert newest == [(T2,)] * 7 + [(T1,)] * 7


def test_term_structure_interpolates_atm_in_log_moneyness(conn) -> None:
    got = conn.execute("""SELECT currency, ts, expiry, days_to_expiry, atm_iv FROM deribit.iv_term_structure
                           ORDER BY currency, ts, expiry""").fetchall()

    def atm(forward: float, below: tuple[float, float], above: tuple[float, float]) -> float:
        return below[1] + (above[1] - below[1]) * math.log(forward / below[0]) / math.log(above[0] / below[0])

    # NEAR: strike 100 averages its call and put (50, 60) -> 55, strike 110 (54, 58) -> 56; the older round has
    # forward + 1 and IVs + 10. FAR: 100 (50, 52) -> 51 and 130 -> 55. ETH: no strike below the forward, no row.
    expected = [
        ("BTC", T1, NEAR, atm(106, (100, 65), (110, 66))),
        ("BTC", T1, FAR, atm(105, (100, 61), (130, 65))),
        ("BTC", T2, NEAR, atm(105, (100, 55), (110, 56))),
        ("BTC", T2, FAR, atm(104, (100, 51), (130, 55))),
    ]
    assert [r[:3] for r in got] == [r[:3] for r in expected]
    for row, want in zip(got, expected, strict=True):
        assert row[4] == pytest.approx(want[3], abs=1e-12)
        assert float(row[3]) == pytest.approx((row[2] - row[1]).total_seconds() / 86400)


def lerp(target: float, inside: tuple[float, float], outside: tuple[float, float]) -> float:
    """The IV at `target` delta between two quoted (delta, iv) points."""
    return inside[1] + (outside[1] - inside[1]) * (target - inside[0]) / (outside[0] - inside[0])


def test_skew_interpolates_25_delta_in_both_conventions(conn) -> None:
    got = conn.execute(
        "SELECT currency, ts, expiry, rr25, bf25, rr25_pa, bf25_pa FROM deribit.iv_skew WHERE ts = %s", (T2,)
    ).fetchall()
    atm = 55 + (56 - 55) * math.log(105 / 100) / math.log(110 / 100)
    call25 = lerp(0.25, (0.30, 54), (0.20, 57))  # between the 0.30 and 0.20 delta calls
    put25 = lerp(-0.25, (-0.30, 60), (-0.20, 64))  # between the -0.30 and -0.20 delta puts
    # premium-adjusted: delta - mark_price (0.01 coin for every planted option)
    call25_pa = lerp(0.25, (0.29, 54), (0.19, 57))
    put25_pa = lerp(-0.25, (-0.31, 60), (-0.21, 64))
    # FAR: the puts have no option inside 25 delta (only -0.40): no row; ETH: no ATM, no row
    assert [r[:3] for r in got] == [("BTC", T2, NEAR)]
    assert got[0][3:] == pytest.approx(
        (call25 - put25, (call25 + put25) / 2 - atm, call25_pa - put25_pa, (call25_pa + put25_pa) / 2 - atm),
        abs=1e-12,
    )


def test_skew_keeps_a_wing_between_far_apart_strikes(conn) -> None:
    with conn.transaction() as planted:
        # a FAR put at delta -0.15: now both wings interpolate, the calls between delta 0.60 and 0.10 (strikes 100
        # and 130, half a delta apart)
        far_put = ("BTC", FAR, 80.0, "put", 104.0, 60.0, -0.15)
        conn.execute(
            """INSERT INTO deribit.instruments (instrument_name, kind, base_currency, expiry, strike, option_type, raw)
               VALUES (%s, 'option', 'BTC', %s, 80, 'put', '{}')""",
            (_name(*far_put[:4]), FAR),
        )
        conn.execute(
            """INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, quote_ts, underlying_price, mark_price,
                   mark_iv, delta, greeks_source)
               SELECT id, %s, %s, 104, 0.01, 60, -0.15, 'ticker' FROM deribit.instruments WHERE instrument_name = %s""",
            (T2, T2, _name(*far_put[:4])),
        )
        got = conn.execute(
            "SELECT expiry, rr25, bf25, rr25_pa, bf25_pa FROM deribit.iv_skew WHERE ts = %s AND expiry = %s", (T2, FAR)
        ).fetchall()
        raise psycopg.Rollback(planted)  # leave the module's rounds as the other tests expect them
    atm = 51 + (55 - 51) * math.log(104 / 100) / math.log(130 / 100)
    call25, put25 = lerp(0.25, (0.60, 50), (0.10, 55)), lerp(-0.25, (-0.40, 52), (-0.15, 60))
    call25_pa, put25_pa = lerp(0.25, (0.59, 50), (0.09, 55)), lerp(-0.25, (-0.41, 52), (-0.16, 60))
    assert len(got) == 1
    assert got[0][1:] == pytest.approx(
        (call25 - put25, (call25 + put25) / 2 - atm, call25_pa - put25_pa, (call25_pa + put25_pa) / 2 - atm),
        abs=1e-12,
    )
