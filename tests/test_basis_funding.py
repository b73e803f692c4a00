"""deribit.basis_1m, deribit.basis_term_structure and deribit.funding_apr on planted rows with exact expected rows.

The market: BTC-PERPETUAL and the future BTC-29MAR24 (expires 2024-03-29 08:00) on index btc_usd; ETH-29MAR24 on
eth_usd, for which nothing but its own candles exists. Every index source is planted at a minute of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

EXPIRY = datetime(2024, 3, 29, 8, 0, tzinfo=UTC)
WEEKLY_EXPIRY = datetime(2024, 3, 22, 8, 0, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def days(ts: datetime, expiry: datetime = EXPIRY) -> float:
    return (expiry - ts).total_seconds() / 86400


def annualized(future: float, index: float, ts: datetime, expiry: datetime = EXPIRY) -> float:
    return 100 * (future / index - 1) * 365 / days(ts, expiry)


INSTRUMENTS = [
    # name, is_perpetual, currency, settlement, price_index, creation, expiry
    ("BTC-PERPETUAL", True, "BTC", "BTC", "btc_usd", t("2018-08-14 00:00"), None),
    ("BTC-29MAR24", False, "BTC", "BTC", "btc_usd", t("2023-06-30 08:00"), EXPIRY),
    ("BTC-22MAR24", False, "BTC", "BTC", "btc_usd", t("2024-03-08 08:00"), WEEKLY_EXPIRY),
    ("ETH-29MAR24", False, "ETH", "ETH", "eth_usd", t("2023-06-30 08:00"), EXPIRY),
]


def candle(conn, name: str, ts: datetime, close: float) -> None:
    conn.execute(
        """INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
                    SELECT id, %s, %s, %s, %s, %s, 1, %s FROM deribit.instruments WHERE instrument_name = %s""",
        (ts, close, close, close, close, close, name),
    )


def index(conn, ts: datetime, price: float, name: str = "btc_usd", resolution: str = "1 minute") -> None:
    conn.execute("INSERT INTO deribit.index_price_history VALUES (%s, %s, %s, %s)", (name, ts, price, resolution))


def funding(
    conn, ts: datetime, interest_1h: float, index_price: float | None = 70000.0, name: str = "BTC-PERPETUAL"
) -> None:
    conn.execute(
        """INSERT INTO deribit.funding_rate_history (instrument_id, ts, interest_1h, interest_8h, index_price)
                    SELECT id, %s, %s, %s, %s FROM deribit.instruments WHERE instrument_name = %s""",
        (ts, interest_1h, interest_1h * 8, index_price, name),
    )


@pytest.fixture(scope="module")
def market(db):
    with psycopg.connect(db) as conn:
        for name, perpetual, currency, settlement, price_index, created, expiry in INSTRUMENTS:
            conn.execute(
                """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency,
                                settlement_currency, price_index, creation_ts, expiry, raw)
                            VALUES (%s, 'future', %s, %s, %s, %s, %s, %s, '{}')""",
                (name, perpetual, currency, settlement, price_index, created, expiry),
            )
        # 06:00 on the hour: the funding history's index only (and a perpetual candle, which ranks lower).
        candle(conn, "BTC-29MAR24", t("2024-03-29 06:00"), 70050.0)
        funding(conn, t("2024-03-29 06:00"), 1e-5, 70010.0)
        candle(conn, "BTC-PERPETUAL", t("2024-03-29 06:00"), 70020.0)
        # 06:01: the perpetual's close only.
        candle(conn, "BTC-29MAR24", t("2024-03-29 06:01"), 70045.0)
        candle(conn, "BTC-PERPETUAL", t("2024-03-29 06:01"), 70015.0)
        # 06:30: nothing at the minute; the newest sample of the hour before is the funding index of 06:00,
        # newer than the index sample of 05:40.
        index(conn, t("2024-03-29 05:40"), 69990.0, resolution="1 hour")
        candle(conn, "BTC-29MAR24", t("2024-03-29 06:30"), 70030.0)
        # 07:45: nothing within the hour before (the last sample is 06:30's... none: 06:00 is 105 minutes back).
        candle(conn, "BTC-29MAR24", t("2024-03-29 07:45"), 70012.0)
        # 07:57-07:59: the one-minute index, and the future converging to it as it expires.
        for minute, (future, spot) in enumerate([(70006.0, 70000.0), (70003.0, 70001.0), (70001.5, 70001.0)]):
            ts = t("2024-03-29 07:57") + timedelta(minutes=minute)
            candle(conn, "BTC-29MAR24", ts, future)
            index(conn, ts, spot)
            candle(conn, "BTC-PERPETUAL", ts, spot + 100)  # outranked by the index
        # A candle at the expiry minute itself is not the future's (it has settled).
        candle(conn, "BTC-29MAR24", EXPIRY, 70001.0)
        # ETH: a future without any index source.
        candle(conn, "ETH-29MAR24", t("2024-03-29 07:00"), 3500.0)
    return db


def basis_rows(dsn: str, name: str, since: datetime = EXPIRY - timedelta(days=1)) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT ts, future_price, index_price, basis, basis_pct, annualized_basis_pct,
                      days_to_expiry, index_source, perpetual_price, spread_to_perpetual, spread_to_perpetual_pct
                 FROM deribit.basis_1m WHERE instrument_name = %s AND ts >= %s ORDER BY ts""",
            (name, since),
        ).fetchall()


def expected(
    ts: datetime, future: float, index: float | None, source: str | None, perpetual: float | None = None
) -> tuple:
    spread = (None, None) if perpetual is None else (future - perpetual, pytest.approx(100 * (future / perpetual - 1)))
    if index is None:
        return (ts, future, None, None, None, None, pytest.approx(days(ts)), None, perpetual, *spread)
    return (
        ts,
        future,
        index,
        pytest.approx(future - index),
        pytest.approx(100 * (future / index - 1)),
        # annualizing divides by the days left: NULL in the last day, where it reaches thousands of percent
        pytest.approx(annualized(future, index, ts)) if days(ts) >= 1 else None,
        pytest.approx(days(ts)),
        source,
        perpetual,
        *spread,
    )


def test_basis_takes_the_index_from_index_sources_only(market):
    assert basis_rows(market, "BTC-29MAR24") == [
        expected(t("2024-03-29 06:00"), 70050.0, 70010.0, "funding_index", 70020.0),
        # the perpetual's close is no index: the index of 06:00 (an hour-start sample) stands, the perpetual beside
        expected(t("2024-03-29 06:01"), 70045.0, 70010.0, "index_prev_hour", 70015.0),
        expected(t("2024-03-29 06:30"), 70030.0, 70010.0, "index_prev_hour"),
        expected(t("2024-03-29 07:45"), 70012.0, None, None),
        expected(t("2024-03-29 07:57"), 70006.0, 70000.0, "index", 70100.0),
        expected(t("2024-03-29 07:58"), 70003.0, 70001.0, "index", 70101.0),
        expected(t("2024-03-29 07:59"), 70001.5, 70001.0, "index", 70101.0),
    ]


def test_basis_without_any_index_source_is_null_even_with_the_perpetual(market):
    with psycopg.connect(market) as conn:
        # 2024-03-10 12:30: only the perpetual traded with the future, no index sample within the hour.
        candle(conn, "BTC-29MAR24", t("2024-03-10 12:30"), 68100.0)
        candle(conn, "BTC-PERPETUAL", t("2024-03-10 12:30"), 68000.0)
        index(conn, t("2024-03-10 11:00"), 67900.0, resolution="1 hour")  # the hour before: too old
        # 2024-03-10 13:20: the index of 13:00 from the hourly index history, 19 days before expiry.
        candle(conn, "BTC-29MAR24", t("2024-03-10 13:20"), 68200.0)
        index(conn, t("2024-03-10 13:00"), 68050.0, resolution="1 hour")
        rows = conn.execute(
            """SELECT ts, future_price, index_price, basis, basis_pct, annualized_basis_pct,
                      days_to_expiry, index_source, perpetual_price, spread_to_perpetual, spread_to_perpetual_pct
                 FROM deribit.basis_1m WHERE instrument_name = 'BTC-29MAR24' AND ts < '2024-03-11' ORDER BY ts"""
        ).fetchall()
        conn.rollback()
    assert rows == [
        expected(t("2024-03-10 12:30"), 68100.0, None, None, 68000.0),
        expected(t("2024-03-10 13:20"), 68200.0, 68050.0, "index_prev_hour"),
    ]
    assert rows[1][5] == pytest.approx(100 * (68200 / 68050 - 1) * 365 / days(t("2024-03-10 13:20")))


def test_future_converges_to_the_index_at_expiry(market):
    last = basis_rows(market, "BTC-29MAR24")[-3:]
    basis = [row[3] for row in last]
    assert basis == [6.0, 2.0, 0.5] and last[-1][6] == pytest.approx(1 / 1440)
    # Annualized, half a dollar on 70,001 a minute before expiry would be 375 % a year: less than a day left, NULL.
    assert [row[5] for row in last] == [None, None, None]


def test_basis_lists_futures_only_and_keeps_minutes_without_an_index(market):
    with psycopg.connect(market) as conn:
        names = {r[0] for r in conn.execute("SELECT instrument_name FROM deribit.basis_1m")}
        eth = conn.execute(
            "SELECT index_price, index_source, currency, expiry FROM deribit.basis_1m "
            "WHERE instrument_name = 'ETH-29MAR24'"
        ).fetchall()
    assert names == {"BTC-29MAR24", "ETH-29MAR24"}
    assert eth == [(None, None, "ETH", EXPIRY)]


def term_structure(conn, since: datetime, until: datetime) -> list[tuple]:
    return conn.execute(
        """SELECT currency, ts, expiry, days_to_expiry, annualized_basis_pct, instrument_name, future_price,
                  index_price, basis_pct, index_source
             FROM deribit.basis_term_structure WHERE ts >= %s AND ts < %s ORDER BY ts, expiry""",
        (since, until),
    ).fetchall()


def term_row(hour: datetime, name: str, expiry: datetime, future: float, index: float, source: str) -> tuple:
    left = days(hour, expiry)
    return (
        "BTC",
        hour,
        expiry,
        pytest.approx(left),
        pytest.approx(annualized(future, index, hour, expiry)) if left >= 1 else None,
        name,
        future,
        index,
        pytest.approx(100 * (future / index - 1)),
        source,
    )


def test_term_structure_every_hour_the_index_is_known_with_the_last_candle_before_it(market):
    with psycopg.connect(market) as conn:
        for hour, spot in ((t("2024-03-20 10:00"), 65000.0), (t("2024-03-20 11:00"), 65100.0)):
            funding(conn, hour, 2e-6, spot)
        funding(conn, t("2024-03-20 12:00"), 2e-6, 65200.0)
        index(conn, t("2024-03-20 12:00"), 65210.0, resolution="1 hour")  # the index history wins on the hour
        candle(conn, "BTC-22MAR24", t("2024-03-20 09:59"), 65010.0)  # closes at 10:00
        candle(conn, "BTC-22MAR24", t("2024-03-20 10:30"), 65050.0)  # 11:00 has no candle on the hour
        candle(conn, "BTC-29MAR24", t("2024-03-20 11:00"), 65180.0)  # opens at 11:00: the price of 12:00, not 11:00
        candle(conn, "BTC-29MAR24", t("2024-03-20 11:45"), 65190.0)  # the last before 12:00
        candle(conn, "BTC-29MAR24", t("2024-03-20 12:00"), 65300.0)  # after 12:00's instant; 13:00 has no index
        # 09:00 has its candle but no index; BTC-22MAR24 has no candle between 11:00 and 12:00: no rows.
        candle(conn, "BTC-22MAR24", t("2024-03-20 08:10"), 64900.0)
        rows = term_structure(conn, t("2024-03-20 00:00"), t("2024-03-21 00:00"))
        conn.rollback()  # leave the module's market as the other tests expect it
    assert rows == [
        term_row(t("2024-03-20 10:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 65010.0, 65000.0, "funding_index"),
        term_row(t("2024-03-20 11:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 65050.0, 65100.0, "funding_index"),
        term_row(t("2024-03-20 12:00"), "BTC-29MAR24", EXPIRY, 65190.0, 65210.0, "index"),
    ]


def test_term_structure_up_to_the_expiry_hour(market):
    with psycopg.connect(market) as conn:
        for hour in ("2024-03-22 07:00", "2024-03-22 08:00"):
            funding(conn, t(hour), 2e-6, 66000.0)
        candle(conn, "BTC-22MAR24", t("2024-03-22 06:30"), 66020.0)
        candle(conn, "BTC-22MAR24", t("2024-03-22 07:59"), 66001.0)  # its last minute; 08:00 is settlement
        rows = term_structure(conn, t("2024-03-22 00:00"), t("2024-03-23 00:00"))
        conn.rollback()
    # 07:00: an hour before expiry, annualized NULL (less than a day left); 08:00, the expiry itself: no row.
    assert rows == [term_row(t("2024-03-22 07:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 66020.0, 66000.0, "funding_index")]
    assert rows[0][4] is None


def test_funding_apr_annualizes_hourly_funding(db):
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, "
            "price_index, raw) VALUES ('ETH-PERPETUAL', 'future', true, 'ETH', 'eth_usd', '{}')"
        )
        start = t("2024-01-01 00:00")
        # 200 hours at 1e-5 an hour, then one hour at 5e-5, with hour 190 missing (an outage).
        for h in range(200):
            if h != 190:
                funding(conn, start + timedelta(hours=h), 1e-5, 2000.0, name="ETH-PERPETUAL")
        funding(conn, start + timedelta(hours=200), 5e-5, 2000.0, name="ETH-PERPETUAL")
        rows = conn.execute(
            "SELECT ts, apr, apr_1d, apr_7d, hours_1d, hours_7d FROM deribit.funding_apr "
            "WHERE instrument_name = 'ETH-PERPETUAL' AND ts >= %s ORDER BY ts",
            (start + timedelta(hours=199),),
        ).fetchall()
        first = conn.execute(
            "SELECT apr, apr_1d, apr_7d, hours_1d, hours_7d FROM deribit.funding_apr "
            "WHERE instrument_name = 'ETH-PERPETUAL' ORDER BY ts LIMIT 1"
        ).fetchone()
    year = 24 * 365 * 100
    assert first == (pytest.approx(8.76), pytest.approx(8.76), pytest.approx(8.76), 1, 1)  # one hour's rate
    # The last hour: 23 hours of 1e-5 (one of the 24 missing) and one of 5e-5; 7 days: 166 + 1 hours.
    assert rows == [
        (start + timedelta(hours=199), pytest.approx(8.76), pytest.approx(8.76), pytest.approx(8.76), 23, 167),
        (
            start + timedelta(hours=200),
            pytest.approx(5e-5 * year),
            pytest.approx((22 * 1e-5 + 5e-5) / 23 * year),
            pytest.approx((166 * 1e-5 + 5e-5) / 167 * year),
            23,
            167,
        ),
    ]
