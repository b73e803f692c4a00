"""deribit.black76_greeks against the exchange's own numbers and against the simulator's tickers.

The conventions (docs/deribit.md): Black-76 on the forward (underlying_price), r = 0, T = (expiry - quote
timestamp) / 365 days, sigma = mark_iv / 100; price in USD (mark_price in coin = price / forward), delta not
premium-adjusted, gamma per USD (the exchange rounds it to 5 decimals), vega per vol point, theta per day capped
at the time value left, spot-style rho.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import SimMarket
from deribit_ts.sim import snapshots as sim_snapshots

SAMPLES = Path(__file__).parent / "data" / "deribit_samples"
YEAR_MS = 365 * 86_400_000
GREEKS = "SELECT * FROM deribit.black76_greeks(%s, %s, %s, %s, %s)"


@pytest.fixture(scope="module")
def conn(db):
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection


def test_the_issues_example_reproduces_the_exchanges_record(conn) -> None:
    """`select * from deribit.black76_greeks('call', 38992.71, 40000, 0.88297, 61.27)` = the ticker sample."""
    price, delta, gamma, vega, theta, rho = conn.execute(GREEKS, ("call", 38992.71, 40000, 0.88297, 61.27)).fetchone()
    ticker = json.loads((SAMPLES / "ccxt_comment_ticker_option_greeks.json").read_text())["result"]
    g = ticker["greeks"]
    assert price / 38992.71 == pytest.approx(ticker["mark_price"], abs=1e-4)  # 0.21678 BTC; the record prints 4 places
    assert delta == pytest.approx(g["delta"], rel=5e-5)
    assert round(gamma, 5) == g["gamma"]
    assert vega == pytest.approx(g["vega"], rel=5e-5)
    assert theta == pytest.approx(g["theta"], rel=1e-4)
    assert rho == pytest.approx(g["rho"], rel=5e-5)


def test_the_sample_with_years_from_its_own_timestamp(conn) -> None:
    """T from the record itself: BTC-27SEP24 expires 2024-09-27 08:00 UTC; the quote's timestamp is in the record."""
    ticker = json.loads((SAMPLES / "ccxt_comment_ticker_option_greeks.json").read_text())["result"]
    expiry_ms = int(datetime(2024, 9, 27, 8, tzinfo=UTC).timestamp() * 1000)
    years = (expiry_ms - ticker["timestamp"]) / YEAR_MS
    assert years == pytest.approx(0.88297, abs=1e-5)
    _, delta, _, vega, theta, rho = conn.execute(
        GREEKS, ("call", ticker["underlying_price"], 40000, years, ticker["mark_iv"])
    ).fetchone()
    g = ticker["greeks"]
    assert (delta, vega, theta, rho) == pytest.approx((g["delta"], g["vega"], g["theta"], g["rho"]), rel=1e-4)


def test_put_call_parity_and_shared_greeks(conn) -> None:
    call = conn.execute(GREEKS, ("call", 38992.71, 40000, 0.88297, 61.27)).fetchone()
    put = conn.execute(GREEKS, ("put", 38992.71, 40000, 0.88297, 61.27)).fetchone()
    assert call[0] - put[0] == pytest.approx(38992.71 - 40000, abs=1e-8)  # C - P = F - K (r = 0)
    assert call[1] - put[1] == pytest.approx(1.0)
    assert call[2:5] == put[2:5]  # gamma, vega, theta (far from expiry: uncapped)
    assert put[5] < 0 < call[5]


def test_expiry_no_vol_and_bad_input(conn) -> None:
    assert conn.execute(GREEKS, ("put", 38000.0, 40000, 0.0, 61.27)).fetchone() == (2000.0, -1.0, 0, 0, 0, 0)
    assert conn.execute(GREEKS, ("call", 42000.0, 40000, -0.1, 61.27)).fetchone() == (2000.0, 1.0, 0, 0, 0, 0)
    assert conn.execute(GREEKS, ("C", 38000.0, 40000, 0.5, 0)).fetchone()[:2] == (0.0, 0.0)
    for bad in (
        ("straddle", 1.0, 1.0, 1.0, 50),
        ("call", 0.0, 1.0, 1.0, 50),
        ("put", 1.0, -5.0, 1.0, 50),
        ("call", None, 1.0, 1.0, 50),
    ):
        assert conn.execute(GREEKS, bad).fetchall() == []


def test_theta_is_capped_at_the_time_value_near_expiry(conn) -> None:
    """The exchange reports min(1-day theta, lifetime theta): a day before expiry an OTM option cannot lose more
    than it is worth (observed: -37.90 reported where the analytic value was -82.16)."""
    price, _, _, _, theta, _ = conn.execute(GREEKS, ("call", 40000.0, 44000, 1.17 / 365, 60)).fetchone()
    analytic = (
        -40000
        * math.exp(-0.5 * ((math.log(40000 / 44000) + 0.5 * 0.6**2 * 1.17 / 365) / (0.6 * math.sqrt(1.17 / 365))) ** 2)
        / math.sqrt(2 * math.pi)
        * 0.6
        / (2 * math.sqrt(1.17 / 365))
        / 365
    )
    assert analytic < -price  # the analytic daily decay exceeds the whole (time) value
    assert theta == pytest.approx(-price)


def test_function_is_immutable_and_parallel_safe(conn) -> None:
    assert conn.execute("SELECT provolatile, proparallel FROM pg_proc WHERE proname = 'black76_greeks'").fetchone() == (
        "i",
        "s",
    )


def _sim_tickers() -> list[dict]:
    """Every live option's ticker of both currencies at the tests' instant and a few hours before an expiry."""
    m = SimMarket(sim_config())
    out = []
    for at in (SIM_NOW_MS, SIM_NOW_MS + 19 * 3_600_000):  # the second: the next 08:00 expiry is 1.5 h away
        for currency in ("BTC", "ETH"):
            for inst in m.instruments(currency, "option", now_ms=at):
                ticker = sim_snapshots.ticker(m, inst, at)
                ticker["strike"], ticker["option_type"], ticker["expiry_ms"] = (
                    inst.strike,
                    inst.option_type,
                    inst.expiry_ms,
                )
                out.append(ticker)
    return out


def test_sql_reproduces_the_simulators_tickers_across_the_chain(conn) -> None:
    tickers = _sim_tickers()
    assert len(tickers) > 500
    rows = conn.execute(
        """SELECT g.* FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[])
                    WITH ORDINALITY AS t(kind, f, k, years, iv, n)
            CROSS JOIN LATERAL deribit.black76_greeks(t.kind, t.f, t.k, t.years, t.iv) g ORDER BY t.n""",
        (
            [t["option_type"] for t in tickers],
            [t["underlying_price"] for t in tickers],
            [t["strike"] for t in tickers],
            [(t["expiry_ms"] - t["timestamp"]) / YEAR_MS for t in tickers],
            [t["mark_iv"] for t in tickers],
        ),
    ).fetchall()
    assert len(rows) == len(tickers)
    capped = 0
    for t, (price, delta, gamma, vega, theta, rho) in zip(tickers, rows, strict=True):
        g, name = t["greeks"], t["instrument_name"]
        assert price / t["underlying_price"] == pytest.approx(t["mark_price"], abs=6e-9), name
        assert abs(round(gamma, 5) - g["gamma"]) <= 1e-5 + 1e-12, name
        for ours, theirs in ((delta, g["delta"]), (vega, g["vega"]), (theta, g["theta"]), (rho, g["rho"])):
            assert ours == pytest.approx(theirs, abs=6e-6, rel=1e-9), (name, ours, theirs)
        sign = 1 if t["option_type"] == "call" else -1
        time_value = price - max(0.0, sign * (t["underlying_price"] - t["strike"]))
        capped += theta == pytest.approx(-time_value, abs=1e-9) and time_value > 1e-6
    assert capped  # some options near expiry were in the capped-theta regime, and matched there too


# ---------------------------------------------------------------------------------------------------------------
# Finite for every input a chain can hold: T down to 0, deep wings, IV 0 or huge, extreme forwards and strikes.
# ---------------------------------------------------------------------------------------------------------------

SD_MIN = 1e-12  # below this sigma * sqrt(T) the option is at its expiry / no-vol limit (sql/60_options.sql)
GRID_FORWARDS = (1e-100, 1e-8, 0.37, 60000.0, 80000.0, 1e12, 1e100)
GRID_YEARS = (0.0, -1.0, 5e-324, 1e-300, 1e-40, 1e-20, 1e-14, 1 / (365 * 86400), 1e-4, 1 / 365, 0.5, 2.0, 1000.0)
GRID_IVS = (0.0, 5e-324, 1e-200, 1e-6, 0.01, 1.0, 50.0, 300.0, 1e4, 1e6)


def reference(call: bool, f: float, k: float, t: float, iv: float) -> tuple[float, ...]:
    """Black-76 with Deribit's conventions in plain Python floats (which underflow to 0 silently), and its limits
    where sigma sqrt(T) is (nearly) 0: the intrinsic value, delta by the side of the strike, other greeks 0."""
    intrinsic = max(f - k, 0.0) if call else max(k - f, 0.0)
    if t <= 0 or iv <= 0 or math.log(iv) - math.log(100) + 0.5 * math.log(t) <= math.log(SD_MIN):
        return (intrinsic, float(f > k) if call else -float(f < k), 0.0, 0.0, 0.0, 0.0)
    s = iv / 100
    sd = s * math.sqrt(t)
    d1 = (math.log(f) - math.log(k)) / sd + sd / 2
    d2 = d1 - sd

    def n(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) if abs(d1) < 1e150 else 0.0
    value = f * n(d1) - k * n(d2) if call else k * n(-d2) - f * n(-d1)
    return (
        value,
        n(d1) if call else n(d1) - 1,
        pdf / (f * sd),
        f * pdf * math.sqrt(t) / 100,
        max(-f * pdf * s / (2 * math.sqrt(t)) / 365, intrinsic - value),
        (k * t * n(d2) if call else -k * t * n(-d2)) / 100,
    )


def scales(f: float, k: float, t: float, iv: float) -> tuple[float, ...]:
    """The natural size of each output, against which an absolute difference is judged."""
    sd = iv / 100 * math.sqrt(max(t, 0.0))
    sqrt_t = math.sqrt(max(t, 0.0))
    return (
        max(f, k),
        1.0,
        1 / (f * sd) if sd > 0 else 0.0,
        f * sqrt_t / 100,
        f * (iv / 100) / (sqrt_t or 1) / 365 + max(f, k),
        k * max(t, 0.0) / 100,
    )


def test_the_issues_expiry_day_input_is_finite(conn) -> None:
    """Once `value out of range: underflow`: a deep out-of-the-money call 53 minutes before expiry. Literal
    arguments too (the planner folds constants, so a guard in a WHERE alone would not do)."""
    row = conn.execute("SELECT * FROM deribit.black76_greeks('call', 60000, 80000, 0.0001, 50)").fetchone()
    assert row == conn.execute(GREEKS, ("call", 60000, 80000, 0.0001, 50)).fetchone()
    price, delta, gamma, vega, theta, rho = row
    assert all(math.isfinite(v) for v in row)
    assert (price, delta, gamma, vega, theta, rho) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # 57 sd out: below 1e-300


def test_greeks_over_a_grid_of_extreme_inputs(conn) -> None:
    inputs = [
        (kind, f, k, t, iv)
        for kind in ("call", "put")
        for f in GRID_FORWARDS
        for k in GRID_FORWARDS
        for t in GRID_YEARS
        for iv in GRID_IVS
    ]
    rows = conn.execute(
        """SELECT t.n, g.* FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[])
                    WITH ORDINALITY AS t(kind, f, k, years, iv, n)
            CROSS JOIN LATERAL deribit.black76_greeks(t.kind, t.f, t.k, t.years, t.iv) g ORDER BY t.n""",
        [list(column) for column in zip(*inputs, strict=True)],
    ).fetchall()
    assert [n for n, *_ in rows] == list(range(1, len(inputs) + 1))  # one row for every input
    limits = wings = 0
    for (kind, f, k, t, iv), (_, *ours) in zip(inputs, rows, strict=True):
        assert all(v is not None and math.isfinite(v) for v in ours), (kind, f, k, t, iv, ours)
        expected = reference(kind == "call", f, k, t, iv)
        if expected[2:] == (0.0, 0.0, 0.0, 0.0) and expected[1] in (0.0, 1.0, -1.0):
            if tuple(ours) == expected:
                limits += 1
        for name, a, b, scale in zip(
            ("price", "delta", "gamma", "vega", "theta", "rho"), ours, expected, scales(f, k, t, iv), strict=True
        ):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9 * scale), (name, kind, f, k, t, iv, a, b)
        d1_far = expected[2] == 0.0 and expected[0] != 0.0
        wings += d1_far
    assert limits > 3000 and wings > 100  # the grid reaches the limits and the far wings, not only the middle


@pytest.mark.parametrize(
    "args",
    [
        ("call", 1e308, 80000.0, 0.5, 50.0),
        ("put", 60000.0, 1e-308, 0.5, 50.0),
        ("call", float("nan"), 80000.0, 0.5, 50.0),
        ("put", 60000.0, float("inf"), 0.5, 50.0),
        ("call", 60000.0, 80000.0, float("nan"), 50.0),
        ("call", 60000.0, 80000.0, float("inf"), 50.0),
        ("put", 60000.0, 80000.0, 1e300, 50.0),
        ("call", 60000.0, 80000.0, 0.5, float("nan")),
        ("put", 60000.0, 80000.0, 0.5, float("inf")),
        ("call", 60000.0, 80000.0, 0.5, 1e300),
    ],
)
def test_outside_the_domain_is_no_row_never_an_error(conn, args) -> None:
    assert conn.execute(GREEKS, args).fetchall() == []


def test_exact_limits(conn) -> None:
    # At and after expiry, or without vol: intrinsic value and a step delta; at the money the step is 0.
    for years, iv in ((0.0, 50.0), (-3.0, 50.0), (0.5, 0.0), (1e-30, 50.0), (0.5, 1e-12)):
        assert conn.execute(GREEKS, ("call", 60000.0, 80000.0, years, iv)).fetchone() == (0, 0, 0, 0, 0, 0)
        assert conn.execute(GREEKS, ("put", 60000.0, 80000.0, years, iv)).fetchone() == (20000, -1, 0, 0, 0, 0)
        assert conn.execute(GREEKS, ("call", 90000.0, 80000.0, years, iv)).fetchone() == (10000, 1, 0, 0, 0, 0)
        assert conn.execute(GREEKS, ("put", 80000.0, 80000.0, years, iv)).fetchone() == (0, 0, 0, 0, 0, 0)
    # Far wings while live: delta exactly 0 or 1 (-1), no gamma or vega.
    assert conn.execute(GREEKS, ("call", 60000.0, 1000.0, 1 / 365, 50.0)).fetchone()[:4] == (59000, 1, 0, 0)
    assert conn.execute(GREEKS, ("put", 60000.0, 1000.0, 1 / 365, 50.0)).fetchone()[1:4] == (0, 0, 0)
    # A vol so large the call is worth the whole forward (and the put the strike).
    price, delta, gamma, vega, _, _ = conn.execute(GREEKS, ("call", 60000.0, 80000.0, 1000.0, 1e6)).fetchone()
    assert (price, delta, gamma, vega) == (60000, 1, 0, 0)


def test_a_round_near_expiry_is_written_whole(db) -> None:
    """Greeks completed in SQL for options minutes and seconds from expiry, deep in the wings or without a vol:
    the round's one INSERT writes every row (once, one underflow rolled back the whole round)."""
    from deribit_ts.db.queries import query
    from deribit_ts.ingest.snapshots import STAGING, staging_ddl

    quote = datetime(2026, 3, 27, 7, 59, 59, tzinfo=UTC)
    expiry = datetime(2026, 3, 27, 8, tzinfo=UTC)
    rows = [  # (name, strike, type, forward, mark_iv, seconds before expiry)
        ("BTC-27MAR26-80000-C", 80000.0, "call", 60000.0, 50.0, 3180),  # the issue's 0.0001 years
        ("BTC-27MAR26-1000-P", 1000.0, "put", 60000.0, 80.0, 1),
        ("BTC-27MAR26-60000-C", 60000.0, "call", 60000.0, 0.0, 1),
        ("BTC-27MAR26-60000-P", 60000.0, "put", 60000.0, 1e-9, 1),
        ("BTC-27MAR26-500000-C", 500000.0, "call", 60000.0, 1e6, 3600),
    ]
    with psycopg.connect(db) as conn:
        ids = []
        for name, strike, kind, *_ in rows:
            ids.append(
                conn.execute(
                    """INSERT INTO deribit.instruments
                              (instrument_name, kind, base_currency, expiry, strike, option_type, raw)
                       VALUES (%s, 'option', 'BTC', %s, %s, %s, '{}') RETURNING id""",
                    (name, expiry, strike, kind),
                ).fetchone()[0]
            )
        conn.execute(staging_ddl())
        values = {column: None for column in STAGING.columns}
        for instrument_id, (_, _, _, forward, iv, seconds) in zip(ids, rows, strict=True):
            row = {
                **values,
                "instrument_id": instrument_id,
                "quote_ts": expiry - timedelta(seconds=seconds),
                "underlying_price": forward,
                "mark_iv": iv,
                "greeks_source": "ticker",
            }
            conn.execute(
                f"INSERT INTO pg_temp.snapshot_round ({', '.join(STAGING.columns)}) "
                f"VALUES ({', '.join(['%s'] * len(STAGING.columns))})",
                [row[c] for c in STAGING.columns],
            )
        assert conn.execute(query("snapshots", "write"), {"ts": quote}).rowcount == len(rows)
        stored = conn.execute(
            """SELECT delta, gamma, greeks_source FROM deribit.option_ticker_snapshots
                WHERE instrument_id = ANY (%s) ORDER BY instrument_id""",
            (ids,),
        ).fetchall()
    assert stored == [(0.0, 0.0, "sql"), (0.0, 0.0, "sql"), (0.0, 0.0, "sql"), (0.0, 0.0, "sql"), (1.0, 0.0, "sql")]


def test_the_inlined_delta_equals_black76_greeks_delta_everywhere(conn) -> None:
    """deribit_ts.black76_delta (what deribit.option_trades computes per trade) is black76_greeks' delta to the
    bit, NULL where black76_greeks has no row, over the extreme grid and inputs outside the domain."""
    outside = [
        ("call", math.nan, 60000.0, 0.5, 50.0),
        ("put", 60000.0, 60000.0, math.nan, 50.0),
        ("call", 60000.0, 60000.0, 0.5, math.nan),
        ("call", None, 60000.0, 0.5, 50.0),
        ("x", 60000.0, 60000.0, 0.5, 50.0),
        (None, 60000.0, 60000.0, 0.5, 50.0),
        ("c", 0.0, 60000.0, 0.5, 50.0),
        ("P", -1.0, 60000.0, 0.5, 50.0),
        ("p", 60000.0, 1e-101, 0.5, 50.0),
        ("CALL", 60000.0, 1e101, 0.5, 50.0),
        ("call", 60000.0, 60000.0, 1000.5, 50.0),
        ("call", 60000.0, 60000.0, 0.5, 1.5e6),
        ("put", 60000.0, 60000.0, math.inf, 50.0),
    ]
    inputs = (
        [
            (kind, f, k, t, iv)
            for kind in ("call", "put")
            for f in GRID_FORWARDS
            for k in GRID_FORWARDS
            for t in GRID_YEARS
            for iv in GRID_IVS
        ]
        + [("put", 60000.0, 60000.0, None, None)]
        + outside
    )  # (no time nor IV: the option's limit, a row)
    unequal, nulls, total = conn.execute(
        """SELECT count(*) FILTER (WHERE d.delta IS DISTINCT FROM g.delta),
                  count(*) FILTER (WHERE d.delta IS NULL), count(*)
             FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[])
                    WITH ORDINALITY AS t(kind, f, k, years, iv, n)
            CROSS JOIN LATERAL (SELECT deribit_ts.black76_delta(t.kind, t.f, t.k, t.years, t.iv) AS delta) d
             LEFT JOIN LATERAL deribit.black76_greeks(t.kind, t.f, t.k, t.years, t.iv) g ON true""",
        [list(column) for column in zip(*inputs, strict=True)],
    ).fetchone()
    assert (unequal, total) == (0, len(inputs))
    assert nulls == len(outside)
    # inlined into the view: no function call per trade
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE) SELECT delta FROM deribit.option_trades"))
    assert "black76" not in plan and "erfc" in plan, plan
