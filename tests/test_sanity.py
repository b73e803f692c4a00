"""deribit.sanity_violations fit for options, and kept by the refresh (deribit_ts.refresh_sanity).

Planted cases with exact expected rows: an option's ordinary thin trading gives no spike, a planted option tick gives
one, a 1e308 high gives one absurd_value; the rows stored by a refresh (and kept current after a late window and a
re-load) are the rows a full recompute gives; over a month of the simulator's options the spikes are exactly the
bad ticks it planted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import backfill_candles, wanted_candles
from test_quality import SIM_NOW, add_candles, add_instrument, candle, planted_bad_ticks

from deribit_ts.sim import SimConfig, SimMarket, run_in_thread
from deribit_ts.timeutil import to_ms

T0 = datetime(2024, 1, 1, tzinfo=UTC)
M = timedelta(minutes=1)
D = timedelta(days=1)
ROWS = "SELECT instrument_name, ts, rule FROM deribit.sanity_violations WHERE instrument_name LIKE %s ORDER BY 1, 2, 3"


def one(ts: datetime, o: float, h: float, low: float, c: float, lots: float = 1.0) -> tuple:
    """An option candle: volume in coin, cost in coin."""
    return (ts, o, h, low, c, lots, lots * (o + c) / 2)


def plant_option(conn) -> int:
    """An option (tick 0.0005) trading a few minutes a day, with ordinary thin trading and two planted ticks."""
    opt = add_instrument(conn, "TST-OPT-C", created=T0, expiry=T0 + 30 * D, tick=0.0005, kind="option")
    add_candles(
        conn,
        opt,
        [
            one(T0, 0.0150, 0.0150, 0.0150, 0.0150),
            # a jump after 37 minutes without a trade, given back by the next trade: ordinary, no spike
            one(T0 + 37 * M, 0.0195, 0.0200, 0.0195, 0.0200),
            one(T0 + 38 * M, 0.0150, 0.0150, 0.0145, 0.0145),
            # a one-tick wick of a cheap option is 50 % of its price: the book's next level, no spike
            one(T0 + 90 * M, 0.0010, 0.0015, 0.0010, 0.0010),
            # bought at the bid, sold at the ask: a body of 14 %, no spike
            one(T0 + 120 * M, 0.0140, 0.0160, 0.0140, 0.0160),
            # a sweep of an expensive option through six ticks, 1.5 % of its price: no spike
            one(T0 + 150 * M, 0.2000, 0.2030, 0.2000, 0.2000),
            # planted: a trade five ticks (17 %) above the minute's open and close
            one(T0 + 200 * M, 0.0150, 0.0175, 0.0150, 0.0150),
            # planted: a trade three ticks (5 %) below it
            one(T0 + 300 * M, 0.0300, 0.0305, 0.0285, 0.0305),
            # corrupt: a high of 1e308 is absurd, not judged as a spike
            one(T0 + 500 * M, 0.0150, 1e308, 0.0150, 0.0150),
        ],
    )
    return opt


OPTION_ROWS = [
    ("TST-OPT-C", T0 + 200 * M, "spike"),
    ("TST-OPT-C", T0 + 300 * M, "spike"),
    ("TST-OPT-C", T0 + 500 * M, "absurd_value"),
]


def test_an_option_is_judged_against_its_own_price_not_its_thin_trading(new_db):
    with psycopg.connect(new_db) as conn:
        plant_option(conn)
        conn.commit()
        on_read = conn.execute(ROWS, ("TST-OPT-%",)).fetchall()
        details = dict(
            conn.execute(
                """SELECT ts, detail FROM deribit.sanity_violations
                    WHERE instrument_name = 'TST-OPT-C' AND rule = 'spike'"""
            ).fetchall()
        )
        conn.execute("SELECT deribit_ts.refresh_sanity()")
        conn.commit()
        stored = conn.execute(ROWS, ("TST-OPT-%",)).fetchall()
        kept = conn.execute("SELECT count(*) FROM deribit_ts.sanity_found").fetchone()[0]
    assert on_read == OPTION_ROWS
    assert stored == OPTION_ROWS and kept == 3  # now read from the stored findings
    assert details[T0 + 200 * M].startswith("high 0.0175 is 0.0025")
    assert "16.7 % of the option's price 0.015" in details[T0 + 200 * M]
    assert details[T0 + 300 * M].startswith("low 0.0285 is 0.0015")


FOUND = "SELECT instrument_id, ts, rule, detail FROM deribit_ts.sanity_found WHERE ts < %s ORDER BY 1, 2, 3"


def test_findings_kept_after_a_late_window_and_a_reload_equal_a_full_recompute(new_db):
    """Two days of a future's minutes with a planted wick; a refresh stores the findings. Then a re-load of the
    first day replaces the wick with the true candle but plants a low two hours before it, a late window of day two
    plants a wick there (both written by hand: no coverage record says so), and a candle of the current minute is
    written (newer than the refresh: judged on read). The next refresh judges the changed days again: its
    incremental findings are the planted rows, as a full recompute's are."""
    with psycopg.connect(new_db, autocommit=True) as conn:
        fut = add_instrument(conn, "TST-FUT", created=T0, expiry=None)
        rows = [candle(T0 + m * M, 100.0 + (m % 7) * 0.01) for m in range(2 * 1440)]
        rows[600] = (T0 + 600 * M, 100.0, 112.0, 99.7, 100.0, 1.0, 100.0)
        add_candles(conn, fut, rows)
        conn.execute("SELECT deribit_ts.refresh_sanity()")
        first = conn.execute(ROWS, ("TST-FUT",)).fetchall()

        # the re-load: the exchange's corrected day one, with another bad tick; a late window of day two
        conn.execute(
            "UPDATE deribit.candles_1m SET high = 100.3 WHERE instrument_id = %s AND ts = %s", (fut, T0 + 600 * M)
        )
        conn.execute(
            "UPDATE deribit.candles_1m SET low = 88.0 WHERE instrument_id = %s AND ts = %s", (fut, T0 + 480 * M)
        )
        conn.execute(
            "UPDATE deribit.candles_1m SET high = 113.0 WHERE instrument_id = %s AND ts = %s", (fut, T0 + D + 30 * M)
        )
        now = conn.execute("SELECT date_trunc('minute', now())").fetchone()[0]
        add_candles(conn, fut, [(now, 100.0, 1e308, 99.7, 100.0, 1.0, 100.0)])
        stale = conn.execute(ROWS, ("TST-FUT",)).fetchall()
        summary = conn.execute("SELECT deribit_ts.refresh_sanity()").fetchone()[0]
        incremental = conn.execute(ROWS, ("TST-FUT",)).fetchall()
        stored = conn.execute(FOUND, (now,)).fetchall()
        conn.execute("SELECT deribit_ts.refresh_sanity(true)")
        full = conn.execute(ROWS, ("TST-FUT",)).fetchall()
        recomputed = conn.execute(FOUND, (now,)).fetchall()
    assert first == [("TST-FUT", T0 + 600 * M, "spike")]
    # before the refresh, what the last one stored (the changed days are judged by the next), and the current
    # minute judged on read
    assert stale == [("TST-FUT", T0 + 600 * M, "spike"), ("TST-FUT", now, "absurd_value")]
    # days one and two changed, each judged with a day either side: one span; today's day is new, and its day
    # before (older than the tail) is judged again too: a second span
    assert (summary["days_changed"], summary["spans"], summary["full"]) == (3, 2, False)
    assert incremental == [
        ("TST-FUT", T0 + 480 * M, "spike"),
        ("TST-FUT", T0 + D + 30 * M, "spike"),
        ("TST-FUT", now, "absurd_value"),
    ]
    assert full == incremental and stored == recomputed


def test_the_view_reads_the_stored_findings_and_only_the_newest_candles(new_db):
    """After a refresh the view's candle scan starts at the refresh's bound: the older chunks are excluded."""
    with psycopg.connect(new_db, autocommit=True) as conn:
        fut = add_instrument(conn, "TST-FUT", created=T0 - 30 * D, expiry=None)
        add_candles(conn, fut, [candle(T0 - d * D) for d in range(30)])
        conn.execute("SELECT deribit_ts.refresh_sanity()")
        explain = "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM deribit.sanity_violations"
        plan = "\n".join(r[0] for r in conn.execute(explain))
    # the stored findings, and a candle scan whose five chunks (30 days) are all excluded when the query starts
    assert "Seq Scan on sanity_found" in plan and "Chunks excluded during startup: 5" in plan, plan


# ---- against the simulator ---------------------------------------------------------------------------------------

SINCE, UNTIL = datetime(2018, 9, 1, tzinfo=UTC), datetime(2018, 10, 1, tzinfo=UTC)
EXPIRY = datetime(2018, 9, 21, 8, tzinfo=UTC)


@pytest.mark.slow
def test_a_month_of_simulated_options_gives_exactly_the_planted_bad_ticks(new_db):
    """Every BTC option of one expiry, backfilled for September 2018 through the simulator's HTTP API: the
    violations are its planted bad ticks, nothing else (ordinary option candles give none)."""
    config = SimConfig(now=SIM_NOW, rate_limit="off")
    market = SimMarket(config)
    names = sorted(
        i.name
        for i in market.instruments("BTC", kind="option", expired=True, now_ms=to_ms(UNTIL))
        if i.expiry_ms == to_ms(EXPIRY)
    )
    with run_in_thread(config) as sim:
        backfill_candles(new_db, sim.url, "--instrument", ",".join(names), since=SINCE, until=UNTIL, timeout=600)
        wanted = wanted_candles(new_db)
        with psycopg.connect(new_db) as conn:
            found = conn.execute("SELECT instrument_name, ts, rule FROM deribit.sanity_violations").fetchall()
            traded = conn.execute("SELECT count(*) FROM deribit.candles_1m WHERE volume > 0").fetchone()[0]
            kept = conn.execute("SELECT count(*) FROM deribit_ts.sanity_found").fetchone()[0]
        planted = planted_bad_ticks(sim, wanted)
    assert len(names) >= 40 and traded > 10_000
    assert len(planted) >= 3
    assert sorted(found) == sorted((key, ts, "spike") for key, ts in planted)
    assert kept == len(found)  # stored by the backfill's closing refresh
