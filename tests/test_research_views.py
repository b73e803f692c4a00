"""The research views over planted cases with exact expected rows: iv_constant_maturity (total variance for ATM,
linear in T for the skew, brackets per quantity, NULL outside the expiries), open_interest_by_strike, max_pain,
put_call_ratio, svi_fit (recovers a planted SVI smile), realized_vol_1d (gaps skipped, refreshed when a day
changes), vol_risk_premium, futures_settlement, perpetual_premium_1m and funding_carry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from deribit_ts.ingest import round_research
from deribit_ts.svi import butterfly_arbitrage, fit_svi, svi_total_variance

R = datetime(2024, 3, 1, 8, tzinfo=UTC)  # a snapshot round
NEAR = datetime(2024, 3, 8, 8, tzinfo=UTC)  # 7 days after R
FAR = datetime(2024, 3, 29, 8, tzinfo=UTC)  # 28 days
GONE = datetime(2024, 3, 1, 7, tzinfo=UTC)  # expired before the round
SVI = (0.004, 0.05, -0.35, 0.03, 0.12)  # a, b, rho, m, sigma of FAR's planted smile
FORWARD = 100.0


@pytest.fixture(scope="module")
def conn(db):
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection


def _instrument(conn, name: str, **fields) -> int:
    columns = ["instrument_name", "raw", *fields]
    values = [name, "{}", *fields.values()]
    return conn.execute(
        f"INSERT INTO deribit.instruments ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(values))}) "
        "RETURNING id",
        values,
    ).fetchone()[0]


def _option(conn, expiry: datetime, strike: float, kind: str, iv: float, oi: float | None, currency="BTC") -> None:
    name = f"{currency}-{expiry:%d%b%y}-{strike:g}-{kind[0].upper()}".upper()
    ident = _instrument(
        conn, name, kind="option", base_currency=currency, expiry=expiry, strike=strike, option_type=kind
    )
    conn.execute(
        """INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, quote_ts, underlying_price, index_price,
               mark_price, mark_iv, delta, open_interest, greeks_source) VALUES (%s, %s, %s, %s, 104, 0.01, %s, %s, %s,
               'ticker')""",
        (ident, R, R, FORWARD, iv, 0.5 if kind == "call" else -0.5, oi),
    )


@pytest.fixture(scope="module")
def round_(conn):
    """One BTC round: NEAR has open interest (max pain 100, see test_max_pain...), FAR a smile drawn from SVI and no
    open interest, GONE is quoted but expired."""
    oi = {("call", 90): 1, ("call", 100): 2, ("call", 110): 5, ("call", 120): 3,
          ("put", 90): 4, ("put", 100): 1, ("put", 110): 1}  # fmt: skip
    for (kind, strike), amount in oi.items():
        _option(conn, NEAR, strike, kind, 50.0, amount)
    years = (FAR - R).total_seconds() / (365 * 86400)
    for strike in (70, 80, 90, 95, 100, 105, 110, 120, 135):
        k = math.log(strike / FORWARD)
        iv = 100 * math.sqrt(svi_total_variance(k, *SVI) / years)
        _option(conn, FAR, strike, "put" if strike < FORWARD else "call", iv, 0.0)
    _option(conn, GONE, 100, "call", 40.0, 7.0)
    conn.execute(
        "INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only) VALUES ('BTC', %s, 17, true)", (R,)
    )
    summary = round_research.refresh(conn)
    assert summary["rounds_summarized"] == 1 and summary["svi_fits"] == 1  # NEAR's smile has 4 strikes: not fitted
    return R


def test_open_interest_by_strike_puts_calls_and_puts_side_by_side(conn, round_) -> None:
    got = conn.execute(
        """SELECT expiry, strike, call_oi, put_oi, call_oi_usd, put_oi_usd FROM deribit.open_interest_by_strike
            WHERE currency = 'BTC' AND ts = %s AND expiry = %s ORDER BY strike""",
        (round_, NEAR),
    ).fetchall()
    assert got == [
        (NEAR, 90.0, 1.0, 4.0, 104.0, 416.0),
        (NEAR, 100.0, 2.0, 1.0, 208.0, 104.0),
        (NEAR, 110.0, 5.0, 1.0, 520.0, 104.0),
        (NEAR, 120.0, 3.0, None, 312.0, None),  # no put listed at 120
    ]
    assert conn.execute(
        "SELECT count(*) FROM deribit.open_interest_by_strike WHERE expiry = %s", (GONE,)
    ).fetchone() == (0,)


def test_max_pain_and_put_call_ratio(conn, round_) -> None:
    # payout at 90: puts 1 x 10 + 1 x 20 = 30; at 100: calls 1 x 10 + puts 1 x 10 = 20; at 110: 1 x 20 + 2 x 10 = 40;
    # at 120: 30 + 40 + 50 = 120. FAR has no open interest: no max pain, no ratio.
    assert conn.execute(
        "SELECT expiry, max_pain_strike, payout_usd FROM deribit.max_pain ORDER BY expiry"
    ).fetchall() == [
        (NEAR, 100.0, 20.0),
        (FAR, None, None),
    ]
    assert conn.execute(
        "SELECT currency, ts, expiry, oi_ratio FROM deribit.put_call_ratio ORDER BY expiry"
    ).fetchall() == [
        ("BTC", round_, NEAR, 6 / 11),
        ("BTC", round_, FAR, None),
    ]


@pytest.mark.parametrize(("view", "rows"), [("max_pain", 2), ("put_call_ratio", 2), ("svi_fit", 1)])
def test_a_year_of_the_round_views_reads_only_the_primary_key(conn, round_, view, rows) -> None:
    """Their columns are in the key (0052): a currency's year can be an index-only scan (only possible when the
    index holds every column the query reads), so a year is read in key order without visiting the heap."""
    conn.execute("VACUUM deribit_ts.option_round_expiries, deribit_ts.svi_fits")  # autovacuum's visibility map
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # a planted round is too small for the planner to bother
        plan = conn.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF) SELECT * FROM deribit.{view} "
            "WHERE currency = 'BTC' AND ts >= '2024-01-01' AND ts < '2025-01-01'"
        ).fetchone()[0][0]["Plan"]
    assert plan["Node Type"] == "Index Only Scan" and plan["Index Name"].endswith("_pkey")
    assert plan["Actual Rows"] == rows


def test_round_expiries_take_atm_and_skew_from_the_options_views(conn, round_) -> None:
    got = conn.execute(
        "SELECT expiry, atm_iv, rr25, bf25 FROM deribit_ts.option_round_expiries ORDER BY expiry"
    ).fetchall()
    want = conn.execute(
        """SELECT t.expiry, t.atm_iv, k.rr25, k.bf25 FROM deribit.iv_term_structure t
             LEFT JOIN deribit.iv_skew k ON k.currency = t.currency AND k.ts = t.ts AND k.expiry = t.expiry
            WHERE t.currency = 'BTC' AND t.ts = %s ORDER BY t.expiry""",
        (round_,),
    ).fetchall()
    assert got == want and len(got) == 2


def test_svi_fit_recovers_the_planted_smile(conn, round_) -> None:
    (row,) = conn.execute(
        "SELECT currency, ts, expiry, a, b, rho, m, sigma, rmse_iv, butterfly_arbitrage FROM deribit.svi_fit"
    ).fetchall()
    assert row[:3] == ("BTC", round_, FAR)
    assert row[3:8] == pytest.approx(SVI, abs=1e-6)
    assert row[8] < 1e-6 and row[9] is False


def test_svi_fit_alone_recovers_parameters_and_flags_butterfly_arbitrage() -> None:
    k = np.linspace(-0.6, 0.4, 12)
    for params in [(0.01, 0.1, -0.4, 0.05, 0.15), (0.03, 0.05, -0.9, 0.2, 0.4)]:
        iv = 100 * np.sqrt(svi_total_variance(k, *params) / 0.25)
        fit = fit_svi(k, iv, 0.25)
        assert (fit.a, fit.b, fit.rho, fit.m, fit.sigma) == pytest.approx(params, abs=1e-6)
        assert fit.rmse_iv < 1e-6 and not fit.butterfly_arbitrage
    # Axel Vogt's slice (Gatheral & Jacquier 2014): fits the smile, yet its density is negative
    assert butterfly_arbitrage(-1.5, 1.5, -0.0410, 0.1331, 0.3060, 0.3586, 0.4153)
    assert fit_svi(k[:4], [50.0] * 4, 0.25) is None  # fewer than 5 strikes


def test_constant_maturity_interpolates_between_the_expiries_around_each_tenor(conn) -> None:
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    # (days, atm_iv, rr25, bf25); the 45-day expiry has no ATM (its bracket is skipped for ATM only)
    expiries = [(5, 50.0, -2.0, 1.0), (14, 55.0, -3.0, 1.5), (20, 60.0, -4.0, 2.0), (45, None, -5.0, 2.5),
                (100, 70.0, -6.0, 3.0)]  # fmt: skip
    for days, atm, rr, bf in expiries:
        conn.execute(
            """INSERT INTO deribit_ts.option_round_expiries (currency, ts, expiry, days_to_expiry, atm_iv, rr25, bf25)
               VALUES ('XYZ', %s, %s, %s, %s, %s, %s)""",
            (ts, ts + timedelta(days=days), days, atm, rr, bf),
        )
    conn.execute(
        """INSERT INTO deribit_ts.option_round_expiries (currency, ts, expiry, days_to_expiry, atm_iv, rr25, bf25)
           VALUES ('ABC', %s, %s, 10, 40, -1, 0.5)""",
        (ts, ts + timedelta(days=10)),
    )
    for currency in ("XYZ", "ABC"):
        conn.execute("SELECT deribit_ts.interpolate_option_round_tenors(%s, %s)", (currency, ts))

    def atm(tenor, lo, hi):
        (d1, v1), (d2, v2) = lo, hi
        w = v1 * v1 * d1 + (v2 * v2 * d2 - v1 * v1 * d1) * (tenor - d1) / (d2 - d1)
        return math.sqrt(w / tenor)

    def lin(tenor, lo, hi):
        (d1, v1), (d2, v2) = lo, hi
        return v1 + (v2 - v1) * (tenor - d1) / (d2 - d1)

    want = [
        ("ABC", 7, None, None, None),  # before the only expiry
        ("ABC", 14, None, None, None),  # after it (and so on)
        ("XYZ", 7, atm(7, (5, 50), (14, 55)), lin(7, (5, -2), (14, -3)), lin(7, (5, 1), (14, 1.5))),
        ("XYZ", 14, 55.0, -3.0, 1.5),  # an expiry exactly at the tenor
        ("XYZ", 30, atm(30, (20, 60), (100, 70)), lin(30, (20, -4), (45, -5)), lin(30, (20, 2), (45, 2.5))),
        ("XYZ", 60, atm(60, (20, 60), (100, 70)), lin(60, (45, -5), (100, -6)), lin(60, (45, 2.5), (100, 3))),
        ("XYZ", 90, atm(90, (20, 60), (100, 70)), lin(90, (45, -5), (100, -6)), lin(90, (45, 2.5), (100, 3))),
        ("XYZ", 180, None, None, None),  # after the last expiry
    ]
    got = conn.execute(
        """SELECT currency, tenor_days, atm_iv, rr25, bf25 FROM deribit.iv_constant_maturity
            WHERE ts = %s AND (currency = 'XYZ' OR tenor_days IN (7, 14)) ORDER BY currency, tenor_days""",
        (ts,),
    ).fetchall()
    assert [r[:2] for r in got] == [r[:2] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g[2:] == pytest.approx(w[2:], rel=1e-14, abs=1e-14) if w[2] is not None else g[2:] == w[2:]
    assert conn.execute(
        "SELECT count(*) FROM deribit.iv_constant_maturity WHERE currency = 'ABC' AND ts = %s AND atm_iv IS NULL", (ts,)
    ).fetchone() == (6,)  # a row for every tenor at every round


DAY1 = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def perpetual(conn):
    ident = _instrument(conn, "BTC-PERPETUAL", kind="future", is_perpetual=True, base_currency="BTC",
                        settlement_currency="BTC", price_index="btc_usd")  # fmt: skip
    # (minute offset from DAY1, high, low, close): a gap between minute 3 and 10, a gap across midnight
    candles = [(0, 101, 99, 100), (1, 102, 100, 101), (2, 101, 99.5, 100), (3, 103, 100, 102), (10, 104, 102, 103),
               (1440, 105, 103, 104), (1441, 106, 104, 105)]  # fmt: skip
    for minute, high, low, close in candles:
        conn.execute(
            "INSERT INTO deribit.candles_1m VALUES (%s, %s, %s, %s, %s, %s, 1, %s)",
            (ident, DAY1 + timedelta(minutes=minute), close, high, low, close, close),
        )
    for minute, close in ((0, 50.0), (600, 55.0), (1440, 60.0)):
        conn.execute(
            "INSERT INTO deribit.volatility_index VALUES ('BTC', %s, %s, %s, %s, %s)",
            (DAY1 + timedelta(minutes=minute), close, close, close, close),
        )
    round_research.refresh(conn)
    return ident


def _rv(returns: list[float]) -> float:
    return 100 * math.sqrt(525600 * sum(r * r for r in returns) / len(returns))


def _parkinson(ranges: list[tuple[float, float]]) -> float:
    return 100 * math.sqrt(525600 * sum(math.log(h / lo) ** 2 for h, lo in ranges) / (4 * math.log(2) * len(ranges)))


def test_realized_vol_skips_gaps_and_windows_over_days(conn, perpetual) -> None:
    day1 = [math.log(101 / 100), math.log(100 / 101), math.log(102 / 100)]  # 3 -> 10 is a gap
    day2 = [math.log(105 / 104)]  # the first candle of day 2 follows a gap
    got = conn.execute(
        "SELECT day, rv_1d, rv_7d, rv_30d, parkinson_1d FROM deribit.realized_vol_1d "
        "WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY day"
    ).fetchall()
    assert [r[0] for r in got] == [DAY1.date(), (DAY1 + timedelta(days=1)).date()]
    assert got[0][1:] == pytest.approx(
        (_rv(day1), _rv(day1), _rv(day1), _parkinson([(101, 99), (102, 100), (101, 99.5), (103, 100), (104, 102)])),
        rel=1e-12,
    )
    assert got[1][1:] == pytest.approx(
        (_rv(day2), _rv(day1 + day2), _rv(day1 + day2), _parkinson([(105, 103), (106, 104)])), rel=1e-12
    )


def test_realized_vol_follows_a_changed_day_at_the_next_refresh(conn, perpetual) -> None:
    conn.execute("UPDATE deribit.candles_1m SET close = 110 WHERE instrument_id = %s AND ts = %s",
                 (perpetual, DAY1 + timedelta(minutes=1441)))  # fmt: skip
    assert round_research.refresh(conn)["realized_variance_days"] == 1
    (rv,) = conn.execute(
        "SELECT rv_1d FROM deribit.realized_vol_1d WHERE day = %s", ((DAY1 + timedelta(days=1)).date(),)
    ).fetchone()
    assert rv == pytest.approx(_rv([math.log(110 / 104)]), rel=1e-12)
    assert round_research.refresh(conn)["realized_variance_days"] == 0
    conn.execute("UPDATE deribit.candles_1m SET close = 105 WHERE instrument_id = %s AND ts = %s",
                 (perpetual, DAY1 + timedelta(minutes=1441)))  # fmt: skip
    round_research.refresh(conn)


def test_vol_risk_premium_is_the_days_last_dvol_less_rv_30d(conn, perpetual) -> None:
    got = conn.execute("SELECT currency, day, dvol, rv_30d, vrp FROM deribit.vol_risk_premium ORDER BY day").fetchall()
    rv = {r[0]: r[1] for r in conn.execute("SELECT day, rv_30d FROM deribit.realized_vol_1d")}
    d1, d2 = DAY1.date(), (DAY1 + timedelta(days=1)).date()
    assert got == [("BTC", d1, 55.0, rv[d1], 55.0 - rv[d1]), ("BTC", d2, 60.0, rv[d2], 60.0 - rv[d2])]


def test_futures_settlement_joins_the_delivery_price_to_the_last_close_before_expiry(conn) -> None:
    expiry = datetime(2024, 3, 29, 8, tzinfo=UTC)
    settled = _instrument(conn, "BTC-29MAR24", kind="future", base_currency="BTC", price_index="btc_usd", expiry=expiry)
    _instrument(
        conn,
        "BTC-28JUN24",
        kind="future",
        base_currency="BTC",
        price_index="btc_usd",
        expiry=datetime(2024, 6, 28, 8, tzinfo=UTC),
    )  # fmt: skip  (no delivery price: not settled)
    for minute, close in ((-2, 70000.0), (-1, 70010.5), (0, 70100.0)):  # the 08:00 candle is after expiry
        conn.execute(
            "INSERT INTO deribit.candles_1m VALUES (%s, %s, %s, %s, %s, %s, 1, 1)",
            (settled, expiry + timedelta(minutes=minute), close, close, close, close),
        )
    conn.execute(
        "INSERT INTO deribit.delivery_prices VALUES ('btc_usd', '2024-03-29', 70020.0), ('eth_usd', '2024-03-29', 3500)"
    )
    assert conn.execute("SELECT * FROM deribit.futures_settlement").fetchall() == [
        ("BTC-29MAR24", expiry, 70020.0, 70010.5, 70010.5 - 70020.0, 100 * (70010.5 / 70020.0 - 1))
    ]


def test_perpetual_premium_where_the_index_is_known_and_funding_carry(conn, perpetual) -> None:
    noon = datetime(2024, 6, 3, 12, tzinfo=UTC)
    for minute, close in ((0, 100.5), (1, 100.0), (2, 1.0), (60, 102.51)):
        conn.execute("INSERT INTO deribit.candles_1m VALUES (%s, %s, 1, 1, 1, %s, 1, 1)",
                     (perpetual, noon + timedelta(minutes=minute), close))  # fmt: skip
    conn.execute(
        "INSERT INTO deribit.index_price_history VALUES ('btc_usd', %s, 100, '1 minute'), "
        "('btc_usd', %s, 101, '1 minute')",
        (noon, noon + timedelta(minutes=1)),
    )
    funding = [(0, 0.0001, 99.0), (60, -0.00005, 102.0), (120, 0.0002, 103.0)]  # noon's index: the history's wins
    for minute, rate, index in funding:
        conn.execute(
            "INSERT INTO deribit.funding_rate_history VALUES (%s, %s, %s, 0, %s, 0)",
            (perpetual, noon + timedelta(minutes=minute), rate, index),
        )
    assert conn.execute(
        "SELECT instrument_name, ts, perpetual_price, index_price, premium_pct FROM deribit.perpetual_premium_1m "
        "WHERE ts >= %s ORDER BY ts",
        (noon,),
    ).fetchall() == [
        ("BTC-PERPETUAL", noon, 100.5, 100.0, 100 * (100.5 / 100.0 - 1)),
        ("BTC-PERPETUAL", noon + timedelta(minutes=1), 100.0, 101.0, 100 * (100.0 / 101.0 - 1)),
        ("BTC-PERPETUAL", noon + timedelta(hours=1), 102.51, 102.0, 100 * (102.51 / 102.0 - 1)),
    ]  # 12:02 has no index; 14:00 has no candle
    got = conn.execute("SELECT ts, cumulative_funding_pct FROM deribit.funding_carry ORDER BY ts").fetchall()
    assert [r[0] for r in got] == [noon + timedelta(minutes=m) for m, *_ in funding]
    assert [r[1] for r in got] == pytest.approx([0.01, 0.005, 0.025], rel=1e-12)
