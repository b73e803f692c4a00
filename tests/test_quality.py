"""Data quality in SQL: deribit.gap_report, deribit.sanity_violations and the coverage columns.

Planted cases give every cause and every rule with exact expected rows; a backfill from the simulator must give
exactly the simulator's outage windows as gaps and exactly its planted bad ticks as spikes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from helpers import backfill_candles, run_cli, wanted_candles

from deribit_ts.sim import Pathologies, SimConfig, SimMarket, run_in_thread
from deribit_ts.timeutil import MINUTE_MS, from_ms, to_ms

T0 = datetime(2024, 1, 1, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def add_instrument(
    conn,
    name: str,
    *,
    perpetual: bool = False,
    created: datetime | None = None,
    expiry: datetime | None = None,
    tick: float = 0.01,
    kind: str = "future",
) -> int:
    return conn.execute(
        """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, creation_ts, expiry,
                                            tick_size, raw)
           VALUES (%s, %s, %s, 'TST', %s, %s, %s, '{}') RETURNING id""",
        (name, kind, perpetual, created, expiry, tick),
    ).fetchone()[0]


def add_candles(conn, instrument_id: int, rows: list[tuple]) -> None:
    """rows: (ts, open, high, low, close, volume, cost)"""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO deribit.candles_1m VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(instrument_id, *r) for r in rows],
        )


def want_and_fetch(
    conn, dataset: str, key: str, wanted: list[tuple[datetime, datetime]], fetched: list[tuple[datetime, datetime, int]]
) -> None:
    conn.execute(
        "INSERT INTO deribit_ts.targets (dataset, key, wanted) VALUES (%s, %s, %s::tstzmultirange)",
        (dataset, key, "{" + ",".join(f"[{a.isoformat()},{b.isoformat()})" for a, b in wanted) + "}"),
    )
    for a, b, rows in fetched:
        conn.execute(
            "SELECT deribit_ts.record_coverage(%s, %s, tstzrange(%s, %s), %s, %s, NULL)", (dataset, key, a, b, rows, b)
        )


def candle(ts: datetime, price: float = 100.0, *, volume: float = 1.0) -> tuple:
    return (ts, price, price + 0.3, price - 0.3, price, volume, volume * price)


@pytest.fixture(scope="module")
def planted(db):
    plant(db)
    return db


def plant(dsn: str) -> None:
    """A gap of each cause, and a candle breaking each sanity rule (GAP_ROWS and SANITY_ROWS are what they give)."""
    with psycopg.connect(dsn) as conn:
        # Gaps: minutes 0-9 and 20-54 stored (30-39 as zero-volume fillers), 0-59 fetched, 0-99 and 200-209 wanted.
        fut = add_instrument(conn, "GAP-FUT", created=T0, expiry=T0 + 10 * H)
        rows = [candle(T0 + m * M) for m in range(10)] + [candle(T0 + m * M) for m in range(20, 30)]
        rows += [(T0 + m * M, 100.0, 100.0, 100.0, 100.0, 0.0, 0.0) for m in range(30, 40)]
        rows += [candle(T0 + m * M) for m in range(40, 55)]
        add_candles(conn, fut, rows)
        want_and_fetch(
            conn,
            "candles",
            "GAP-FUT",
            [(T0, T0 + 100 * M), (T0 + 200 * M, T0 + 210 * M)],
            [(T0, T0 + 30 * M, 20), (T0 + 30 * M, T0 + 60 * M, 25)],
        )
        # Funding: hourly rows 0-5 but hour 2; everything fetched.
        perp = add_instrument(conn, "GAP-PERPETUAL", perpetual=True, created=T0 - 24 * H)
        for h in (0, 1, 3, 4, 5):
            conn.execute(
                "INSERT INTO deribit.funding_rate_history (instrument_id, ts, interest_1h) VALUES (%s, %s, 0)",
                (perp, T0 + h * H),
            )
        want_and_fetch(conn, "funding", "GAP-PERPETUAL", [(T0, T0 + 6 * H)], [(T0, T0 + 6 * H, 5)])

        # Sanity: 100 clean minutes at 100 (range 0.6) with one planted case per rule.
        bad = add_instrument(conn, "BAD-FUT", created=T0, expiry=T0 + 100 * M)
        clean = {m: candle(T0 + m * M) for m in range(100)}
        clean[70] = (T0 + 70 * M, 100.0, 99.8, 99.5, 100.0, 1.0, 100.0)  # high below open/close
        clean[71] = (T0 + 71 * M, 100.0, 100.3, 100.2, 100.0, 1.0, 100.0)  # low above open/close
        clean[72] = (T0 + 72 * M, 100.0, 100.0, 100.1, 100.0, 1.0, 100.0)  # high below low (and low above o/c)
        clean[73] = (T0 + 73 * M, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0)  # non-positive prices
        clean[74] = (T0 + 74 * M, 100.0, 100.3, 99.7, 100.0, -1.0, -100.0)  # negative volume and cost
        clean[75] = (T0 + 75 * M, 100.0, 100.3, 99.7, 100.0, 1.0, 0.0)  # volume without cost
        clean[76] = (T0 + 76 * M, 100.0, 100.3, 99.7, 100.0, 0.0, 5.0)  # cost without volume
        clean[60] = (T0 + 60 * M, 100.0, 120.3, 99.7, 120.0, 1.0, 110.0)  # a close the next minute gives back
        clean[80] = (T0 + 80 * M, 100.0, 115.0, 99.7, 100.0, 1.0, 100.0)  # a wick: bad tick
        clean[50] = (T0 + 50 * M, 100.0, 100.3, 85.0, 100.0, 1.0, 100.0)  # a wick down
        # A real jump (a body that stays where it went) is no spike.
        clean[85] = (T0 + 85 * M, 100.0, 110.3, 99.7, 110.0, 1.0, 105.0)
        for m in range(86, 100):
            clean[m] = candle(T0 + m * M, 110.0)
        rows = list(clean.values())
        rows += [candle(T0 - M), candle(T0 + 100 * M, 110.0)]  # before the listing, at the expiry
        rows += [candle(T0 + 77 * M + timedelta(seconds=30))]  # off the minute grid
        add_candles(conn, bad, rows)


GAP_ROWS = [
    ("candles", "GAP-FUT", T0 + 10 * M, T0 + 20 * M, 10, "exchange_empty"),
    ("candles", "GAP-FUT", T0 + 55 * M, T0 + 60 * M, 5, "exchange_empty"),
    ("candles", "GAP-FUT", T0 + 60 * M, T0 + 100 * M, 40, "not_fetched"),
    ("candles", "GAP-FUT", T0 + 200 * M, T0 + 210 * M, 10, "not_fetched"),
    ("funding", "GAP-PERPETUAL", T0 + 2 * H, T0 + 3 * H, 60, "exchange_empty"),
]
GAPS = """SELECT dataset, instrument_name, gap_start, gap_end, missing_minutes, cause FROM deribit.gap_report
           WHERE instrument_name IN ('GAP-FUT', 'GAP-PERPETUAL') ORDER BY 2, 3"""

SANITY_ROWS = [
    (T0 - M, "outside_instrument_life"),
    (T0 + 50 * M, "spike"),
    (T0 + 60 * M, "spike"),
    (T0 + 70 * M, "high_below_open_close"),
    (T0 + 71 * M, "low_above_open_close"),
    (T0 + 72 * M, "high_below_low"),
    (T0 + 72 * M, "low_above_open_close"),
    (T0 + 73 * M, "non_positive_price"),
    (T0 + 74 * M, "negative_volume_or_cost"),
    (T0 + 75 * M, "volume_without_cost"),
    (T0 + 76 * M, "cost_without_volume"),
    (T0 + 77 * M + timedelta(seconds=30), "off_minute_grid"),
    (T0 + 80 * M, "spike"),
    (T0 + 100 * M, "outside_instrument_life"),
]
SANITY = "SELECT ts, rule FROM deribit.sanity_violations WHERE instrument_name = 'BAD-FUT' ORDER BY ts, rule"


def test_gap_report_gives_each_cause_exactly(planted):
    with psycopg.connect(planted) as conn:
        assert conn.execute(GAPS).fetchall() == GAP_ROWS


def test_gap_report_for_one_instrument_reads_only_its_bookkeeping(planted):
    with psycopg.connect(planted) as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute("EXPLAIN ANALYZE SELECT * FROM deribit.gap_report WHERE instrument_name = 'GAP-FUT'")
        )
    # one target by its key, its coverage records by theirs, and never the candles
    assert "targets_pkey" in plan and "coverage_key_idx" in plan and "candles_1m" not in plan, plan


def test_coverage_counts_first_last_expected_and_completeness(planted):
    with psycopg.connect(planted) as conn:
        row = conn.execute(
            """SELECT rows, first_ts, last_ts, expected_rows, completeness_pct, resolution, complete
                 FROM deribit.coverage WHERE key = 'GAP-FUT'"""
        ).fetchone()
        stored = conn.execute("SELECT count(*) FROM deribit.ohlcv_1m WHERE instrument_name = 'GAP-FUT'").fetchone()[0]
        funding = conn.execute(
            "SELECT rows, expected_rows, completeness_pct, resolution FROM deribit.coverage WHERE key = 'GAP-PERPETUAL'"
        ).fetchone()
    assert row == (45, T0, T0 + 54 * M, 110, Decimal("40.91"), "1 minute", False)
    assert stored == 45
    assert funding == (5, 6, Decimal("83.33"), "1 hour")


def test_every_sanity_rule_finds_its_planted_candle(planted):
    with psycopg.connect(planted) as conn:
        found = conn.execute(SANITY).fetchall()
        spikes = dict(
            conn.execute(
                "SELECT ts, detail FROM deribit.sanity_violations WHERE instrument_name = 'BAD-FUT' AND rule = 'spike'"
            )
        )
    assert found == SANITY_ROWS
    assert spikes[T0 + 80 * M].startswith("high 115 is 15 beyond the body")
    assert spikes[T0 + 50 * M].startswith("low 85 is 15 beyond the body")
    assert spikes[T0 + 60 * M].startswith("close 120 is 20 beyond the body")


def test_absurd_values_are_violations(db):
    """A non-finite value or one no market has (1e308) breaks `absurd_value`, and is no spike (its arithmetic would
    be meaningless)."""
    with psycopg.connect(db) as conn:
        odd = add_instrument(conn, "ABSURD-FUT", created=T0, expiry=T0 + 10 * H)
        rows = [candle(T0 + m * M) for m in range(20)]
        rows[12] = (T0 + 12 * M, 100.0, 1e308, 99.7, 100.0, 1.0, 100.0)
        rows[13] = (T0 + 13 * M, 100.0, 100.3, 99.7, float("nan"), 1.0, 100.0)
        rows[14] = (T0 + 14 * M, 100.0, 100.3, 99.7, 100.0, float("inf"), 100.0)
        add_candles(conn, odd, rows)
        found = conn.execute(
            "SELECT ts, rule FROM deribit.sanity_violations WHERE instrument_name = 'ABSURD-FUT' ORDER BY ts, rule"
        ).fetchall()
        conn.rollback()
    # (the NaN close also sits above its high: NaN compares above every number)
    assert found == [
        (T0 + 12 * M, "absurd_value"),
        (T0 + 13 * M, "absurd_value"),
        (T0 + 13 * M, "high_below_open_close"),
        (T0 + 14 * M, "absurd_value"),
    ]


def test_sanity_violations_filtered_by_instrument_and_time_read_only_those_rows(planted):
    with psycopg.connect(planted) as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                """EXPLAIN SELECT * FROM deribit.sanity_violations
                WHERE instrument_name = 'BAD-FUT' AND ts >= %s AND ts < %s""",
                (T0, T0 + H),
            )
        )
        rows = conn.execute(
            """SELECT ts, rule FROM deribit.sanity_violations
                WHERE instrument_name = 'BAD-FUT' AND ts >= %s AND ts < %s ORDER BY ts""",
            (T0, T0 + H),
        ).fetchall()
    # The time range reaches the candle scan as an index condition (not a filter above a full scan).
    assert "Index Cond: ((instrument_id = i.id) AND (ts >=" in plan, plan
    assert rows == [(T0 + 50 * M, "spike")]


# ---- against the simulator ---------------------------------------------------------------------------------------

SIM_NOW = datetime(2018, 11, 1, 0, 0, 30, tzinfo=UTC)
SINCE, UNTIL = datetime(2018, 9, 1, tzinfo=UTC), datetime(2018, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def simulated(pg_server, migrated_template):
    """A month of BTC's candles backfilled through the simulator, in a database of its own (`planted` writes into
    the module's `db`)."""
    from helpers import clone_database, drop_database

    name = clone_database(pg_server, migrated_template, "qsim")
    dsn = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    try:
        config = SimConfig(now=SIM_NOW, rate_limit="off")
        with run_in_thread(config) as sim:
            backfill_candles(dsn, sim.url, "--currency", "BTC", since=SINCE, until=UNTIL, timeout=300)
            yield dsn, sim
    finally:
        drop_database(pg_server, name)


def test_gap_report_after_a_backfill_is_exactly_the_outages(simulated):
    dsn, sim = simulated
    wanted = wanted_candles(dsn)
    outages = sim.market.outage_windows()
    expected = sorted(
        (
            "candles",
            key,
            max(lo, from_ms(a)),
            min(hi, from_ms(b)),
            (min(to_ms(hi), b) - max(to_ms(lo), a)) // MINUTE_MS,
            "exchange_empty",
        )
        for key, (lo, hi) in wanted.items()
        for a, b in outages
        if a < to_ms(hi) and b > to_ms(lo)
    )
    with psycopg.connect(dsn) as conn:
        report = conn.execute("SELECT * FROM deribit.gap_report ORDER BY instrument_name, gap_start").fetchall()
    assert len(wanted) >= 4 and len(expected) >= 4  # the perpetual and dated futures, each through the outage
    assert sorted(report) == expected


def planted_bad_ticks(sim, wanted: dict[str, tuple[datetime, datetime]]) -> set[tuple[str, datetime]]:
    """Minutes whose high or low differs from the same market without bad ticks."""
    clean = SimMarket(SimConfig(now=SIM_NOW, rate_limit="off", pathologies=Pathologies(bad_ticks=False)))
    out = set()
    for key, (lo, hi) in wanted.items():
        a, b = to_ms(lo), to_ms(hi) - MINUTE_MS
        dirty, pure = sim.market.candles(key, a, b), clean.candles(key, a, b)
        assert dirty["ticks"] == pure["ticks"]
        for i, t in enumerate(dirty["ticks"]):
            if (dirty["high"][i], dirty["low"][i]) != (pure["high"][i], pure["low"][i]):
                out.add((key, from_ms(t)))
    return out


def test_sanity_violations_after_a_backfill_are_exactly_the_planted_bad_ticks(simulated):
    dsn, sim = simulated
    planted = planted_bad_ticks(sim, wanted_candles(dsn))
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT instrument_name, ts, rule FROM deribit.sanity_violations").fetchall()
    assert len(planted) >= 5
    assert sorted(found) == sorted((key, ts, "spike") for key, ts in planted)


def test_index_coverage_starts_with_the_index_and_says_its_resolutions(new_db):
    """get_index_chart_data serves one-minute points for about two days, hourly for a month, daily before: without
    --since the index is wanted from its first point (not 2010), and coverage says which span is held how."""
    now = datetime(2024, 3, 1, 12, 0, 30, tzinfo=UTC)
    with run_in_thread(SimConfig(now=now, rate_limit="off")) as sim:
        result = run_cli(
            "backfill",
            "index",
            "--index",
            "btc_usd",
            "--json",
            "--dsn",
            new_db,
            "--api-url",
            sim.url,
            env={"DERIBIT_TS_RATE_LIMIT_SCALE": "off"},
        )
        assert result.returncode == 0, result.stderr
        text = run_cli("coverage", "--dataset", "index", "--dsn", new_db).stdout
    with psycopg.connect(new_db) as conn:
        row = conn.execute(
            """SELECT wanted_from, first_ts, rows, expected_rows, completeness_pct, resolution
                 FROM deribit.coverage WHERE dataset = 'index' AND key = 'btc_usd'"""
        ).fetchone()
        spans = conn.execute(
            """SELECT resolution, min(ts), max(ts), count(*) FROM deribit.index_prices WHERE index_name = 'btc_usd'
                GROUP BY 1 ORDER BY 2"""
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM deribit.index_prices").fetchone()[0]
    wanted_from, first_ts, rows, expected, pct, resolution = row
    assert wanted_from == first_ts == SimConfig().start  # the simulated index starts with BTC-PERPETUAL's listing
    assert [s[0] for s in spans] == [timedelta(days=1), H, M]
    assert resolution == ", ".join(
        f"{name} {a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}"
        for name, (_, a, b, _) in zip(("1 day", "1 hour", "1 minute"), spans, strict=True)
    )
    assert rows == stored == sum(s[3] for s in spans)
    # Every span is gapless at its resolution, but for the outages inside it.
    outage_points = sum(
        1
        for res, a, b, _ in spans
        for t in range(to_ms(a), to_ms(b) + 1, int(res.total_seconds()) * 1000)
        if sim.market.in_outage(t)
    )
    assert expected == rows + outage_points
    assert pct == round(Decimal(100 * rows) / expected, 2)
    assert f"at {resolution}" in text


OPT_EXPIRY = T0 + 10 * H


def test_an_option_before_its_first_trade_is_no_outage_and_its_fillers_are_held(db):
    """Options: listed at T0, wanted and fetched for 2 hours. OPT-NEVER never traded; OPT-LATE first traded at
    minute 30, its minutes 31-59 answered with fillers, then an outage at 60-70 and fillers again to 120."""
    with psycopg.connect(db) as conn:
        add_instrument(conn, "OPT-NEVER-C", created=T0, expiry=OPT_EXPIRY, kind="option")
        late = add_instrument(conn, "OPT-LATE-C", created=T0, expiry=OPT_EXPIRY, kind="option")
        add_candles(conn, late, [candle(T0 + 30 * M), candle(T0 + 90 * M, 101.0)])
        want_and_fetch(conn, "candles", "OPT-NEVER-C", [(T0, T0 + 2 * H)], [(T0, T0 + H, 0), (T0 + H, T0 + 2 * H, 0)])
        want_and_fetch(conn, "candles", "OPT-LATE-C", [(T0, T0 + 2 * H)], [])
        for a, b, rows, filled in (
            (T0, T0 + H, 1, [(T0 + 31 * M, T0 + 60 * M)]),
            (T0 + H, T0 + 2 * H, 1, [(T0 + 70 * M, T0 + 90 * M), (T0 + 91 * M, T0 + 120 * M)]),
        ):
            conn.execute(
                "SELECT deribit_ts.record_coverage('candles', %s, tstzrange(%s, %s), %s, %s, NULL, %s::tstzmultirange)",
                (
                    "OPT-LATE-C",
                    a,
                    b,
                    rows,
                    b,
                    "{" + ",".join(f"[{x.isoformat()},{y.isoformat()})" for x, y in filled) + "}",
                ),
            )
        # a record outside what was asked for (a later fetch nobody planned) counts for nothing
        conn.execute(
            "SELECT deribit_ts.record_coverage('candles', 'OPT-LATE-C', tstzrange(%s, %s), 0, %s, NULL)",
            (T0 + 5 * H, T0 + 6 * H, T0 + 6 * H),
        )
        gaps = conn.execute(
            """SELECT instrument_name, gap_start, gap_end, missing_minutes, cause FROM deribit.gap_report
                WHERE instrument_name LIKE 'OPT-%' ORDER BY 1, 2"""
        ).fetchall()
        coverage = conn.execute(
            """SELECT key, rows, filler_minutes, expected_rows, completeness_pct, complete, first_ts, last_ts
                 FROM deribit.coverage WHERE key LIKE 'OPT-%' ORDER BY key"""
        ).fetchall()
        exchange = conn.execute(
            "SELECT * FROM deribit.ohlcv_1m_exchange('OPT-LATE-C', %s, %s)", (T0 + 29 * M, T0 + 92 * M)
        ).fetchall()
        conn.rollback()
    # the exchange's series: each traded minute, and every filler minute at the last traded close, volume 0
    filler = lambda m, close: (T0 + m * M, close, close, close, close, 0.0, 0.0, True)  # noqa: E731
    assert exchange == [
        (*candle(T0 + 30 * M), False),
        *[filler(m, 100.0) for m in range(31, 60)],
        *[filler(m, 100.0) for m in range(70, 90)],
        (*candle(T0 + 90 * M, 101.0), False),
        filler(91, 101.0),
    ]
    assert gaps == [
        ("OPT-LATE-C", T0, T0 + 30 * M, 30, "before_first_trade"),
        ("OPT-LATE-C", T0 + 60 * M, T0 + 70 * M, 10, "exchange_empty"),
        ("OPT-NEVER-C", T0, T0 + 2 * H, 120, "before_first_trade"),
    ]
    assert coverage == [
        # 2 traded minutes and 29 + 20 + 29 filler minutes held of the 120 asked for
        ("OPT-LATE-C", 2, 78, 120, Decimal("66.67"), True, T0 + 30 * M, T0 + 90 * M),
        ("OPT-NEVER-C", 0, 0, 120, Decimal("0.00"), True, None, None),
    ]


def test_option_fillers_recorded_as_filled_are_no_gaps(db):
    """Option filler candles are not stored; the minutes the exchange answered with fillers are recorded in the
    coverage records' `filled` (options backfill) and are not gaps: only the rest of an empty stretch is."""
    with psycopg.connect(db) as conn:
        conn.execute("ALTER TABLE deribit_ts.coverage ADD COLUMN IF NOT EXISTS filled tstzmultirange")
        opt = add_instrument(conn, "GAP-OPT-C", created=T0, expiry=T0 + 10 * H)
        add_candles(conn, opt, [candle(T0 + m * M) for m in (0, 5, 40)])
        want_and_fetch(conn, "candles", "GAP-OPT-C", [(T0, T0 + 60 * M)], [(T0, T0 + 60 * M, 3)])
        conn.execute(
            """UPDATE deribit_ts.coverage SET filled = tstzmultirange(tstzrange(%s, %s), tstzrange(%s, %s))
                         WHERE key = 'GAP-OPT-C'""",
            (T0 + M, T0 + 5 * M, T0 + 6 * M, T0 + 20 * M),
        )
        rows = conn.execute(
            """SELECT gap_start, gap_end, missing_minutes, cause FROM deribit.gap_report
                WHERE instrument_name = 'GAP-OPT-C' ORDER BY gap_start"""
        ).fetchall()
        conn.rollback()
    assert rows == [(T0 + 20 * M, T0 + 40 * M, 20, "exchange_empty"), (T0 + 41 * M, T0 + 60 * M, 19, "exchange_empty")]
