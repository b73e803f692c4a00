"""The collector keeps the trade tape current: real `deribit-ts collect` processes, real ccxt and HTTP against the
simulator at 60x (a simulated minute a second), a real TimescaleDB. Every stored trade is compared with the
simulator's tape, field by field, over the window the collector reports complete (its trade watermarks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import run_cli
from test_collect import collecting, sim_config, sim_minutes, start_collector, stop, wait_for

from deribit_ts.sim import run_in_thread
from deribit_ts.timeutil import from_ms, to_ms

# BTC-PERPETUAL's tape holds a liquidation cascade at 15:56:xx this day: thousands of trades in one millisecond,
# more than a by-currency page.
BURST_DAY_START = datetime(2024, 3, 7, 15, 50, tzinfo=UTC)
CHAIN = {"strikes_per_expiry": 2, "option_expiries": ("day",)}


def open_trade_tasks(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT count(*) FROM deribit_ts.tasks
                WHERE dataset = 'trades' AND priority < 0 AND state IN ('pending', 'running', 'failed')"""
        ).fetchone()[0]


def trade_marks(dsn: str) -> dict[str, datetime]:
    with psycopg.connect(dsn) as conn:
        return dict(
            conn.execute(
                """SELECT dataset, covered_until FROM deribit_ts.watermarks
                    WHERE dataset IN ('option_trades', 'future_trades', 'perpetual_trades') AND key = 'BTC'"""
            ).fetchall()
        )


def stored_trades(dsn: str, names: list[str], start: datetime, end: datetime) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT instrument_name, (extract(epoch FROM ts) * 1000)::bigint, trade_id, trade_seq, price, amount,
                      direction, iv IS NOT NULL, liquidation, block_trade_id
                 FROM deribit.trades WHERE instrument_name = ANY(%s) AND ts >= %s AND ts < %s
                ORDER BY instrument_name, trade_seq""",
            (names, start, end),
        ).fetchall()
    out: dict[str, list[tuple]] = {}
    for name, *row in rows:
        out.setdefault(name, []).append(tuple(row))
    return out


def tape(sim, names: list[str], start: datetime, end: datetime) -> dict[str, list[tuple]]:
    """The simulator's trades of `names` with start <= timestamp < end, as stored_trades() shows them."""
    out: dict[str, list[tuple]] = {}
    market = sim.market
    for name in names:
        inst = market.instrument(name, market.now_ms())
        trades = market.trades(name, to_ms(start), to_ms(end) - 1, limit=10**7)
        for trade, sent in zip(trades, market.trades_json(inst, trades), strict=True):
            out.setdefault(name, []).append(
                (
                    trade.timestamp,
                    trade.trade_id,
                    trade.trade_seq,
                    trade.price,
                    trade.amount,
                    sent["direction"],
                    inst.is_option,
                    trade.liquidation,
                    trade.block_trade_id,
                )
            )
    return out


def btc_names(sim, kinds: tuple[str, ...]) -> list[str]:
    """BTC instruments of `kinds`, listed now or expired recently."""
    market, now = sim.market, sim.market.now_ms()
    listed = market.instruments("BTC", None, False, now) + market.instruments("BTC", None, True, now)

    def kind(i) -> str:
        return "option" if i.is_option else "perpetual" if i.is_perpetual else "future"

    return sorted({i.name for i in listed if i.kind in ("option", "future") and kind(i) in kinds})


def option_candles(dsn: str, name: str) -> list[list[float]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT extract(epoch FROM ts) * 1000, open, high, low, close, volume FROM deribit.ohlcv_1m
                WHERE instrument_name = %s ORDER BY ts""",
            (name,),
        ).fetchall()
    return [[float(x) for x in row] for row in rows]


def true_option_candles(sim, name: str, origin: datetime) -> list[list[float]]:
    """The option's traded minutes from `origin` to its expiry (fillers are not stored)."""
    inst = sim.market.instrument(name, sim.market.now_ms())
    truth = sim.market.candles(name, to_ms(origin), inst.expiry_ms - 60_000)
    rows = zip(*(truth[k] for k in ("ticks", "open", "high", "low", "close", "volume")), strict=True)
    return [[float(x) for x in row] for row in rows if row[0] >= to_ms(origin) and row[5] > 0]


def complete_until(dsn: str) -> datetime:
    return min(trade_marks(dsn).values())


@pytest.mark.slow
def test_option_and_perpetual_trades_equal_the_tape_through_a_cascade_and_a_restart(new_db):
    """Options and the perpetual through a liquidation cascade (more trades in one millisecond than a page): every
    trade of the tape once, nothing else; a restart stores nothing twice and continues where the first run ended."""
    with run_in_thread(sim_config(now=BURST_DAY_START, **CHAIN)) as sim:
        # --since: the cascade is collected even when the collector takes some real seconds (minutes here) to start
        since = ("--since", BURST_DAY_START.isoformat())
        collector = start_collector(new_db, sim.url, "--kinds", "perpetual,option", *since)
        wait_for(lambda: collecting(new_db), 30, "collecting")
        sim_minutes(sim, 9)
        past = BURST_DAY_START + timedelta(minutes=8)
        wait_for(lambda: all(m > past for m in trade_marks(new_db).values()), 60, "scans past the cascade")
        wait_for(lambda: open_trade_tasks(new_db) == 0, 60, "the cascade's millisecond fetched by instrument")
        _, err = stop(collector)
        assert "Traceback" not in err, err
        with psycopg.connect(new_db) as conn:
            origin = conn.execute("SELECT origin FROM deribit_ts.collector_origin").fetchone()[0]
            cascade = conn.execute(
                """SELECT count(*) FROM deribit.trades WHERE instrument_name = 'BTC-PERPETUAL'
                    GROUP BY ts ORDER BY count(*) DESC LIMIT 1"""
            ).fetchone()[0]
        first_end = complete_until(new_db)
        names = btc_names(sim, ("perpetual", "option"))
        assert cascade > 1000, "the scenario should hold a cascade of more than a page in one millisecond"
        want = tape(sim, names, origin, first_end)
        assert len(want) >= 2 and sum(map(len, want.values())) > cascade
        assert stored_trades(new_db, names, origin, first_end) == want

        sim_minutes(sim, 2)  # an outage of two minutes, then a restart from the watermarks
        collector = start_collector(new_db, sim.url, "--kinds", "perpetual,option")
        wait_for(lambda: complete_until(new_db) > first_end + timedelta(minutes=4), 60, "the second run's scans")
        _, err = stop(collector)
        assert "Traceback" not in err, err
        end = complete_until(new_db)
        assert stored_trades(new_db, names, origin, end) == tape(sim, names, origin, end)
        with psycopg.connect(new_db) as conn:  # the options' daily sums agree with their stored trades
            days = conn.execute(
                """SELECT instrument_name, day, trades, round(volume::numeric, 9)
                     FROM deribit_ts.trade_days ORDER BY 1, 2"""
            )
            summed = conn.execute(
                """SELECT instrument_name, (ts AT TIME ZONE 'UTC')::date, count(*), round(sum(amount)::numeric, 9)
                     FROM deribit.trades
                    WHERE instrument_name LIKE 'BTC-%%-%%-%%' GROUP BY 1, 2 ORDER BY 1, 2"""
            )
            assert days.fetchall() == summed.fetchall()


@pytest.mark.slow
def test_after_an_outage_longer_than_a_day_the_trades_equal_the_tape(new_db):
    """The by-currency route serves the last 24 hours only: after 25 simulated hours without a collector the gap
    is filled by instrument (trades tasks), options expired in it included, and status counts the lag from the
    oldest unfinished part."""
    with run_in_thread(sim_config(**CHAIN)) as sim:
        collector = start_collector(new_db, sim.url, "--kinds", "future,option")
        wait_for(lambda: collecting(new_db), 30, "collecting")
        wait_for(lambda: len(trade_marks(new_db)) == 2, 30, "a first scan of each kind")
        sim_minutes(sim, 2)
        _, err = stop(collector)
        assert "Traceback" not in err, err
        with psycopg.connect(new_db) as conn:
            origin = conn.execute("SELECT origin FROM deribit_ts.collector_origin").fetchone()[0]
        before = complete_until(new_db)
        sim.set_now(sim.market.now_ms() + 25 * 3600 * 1000)
        resumed = from_ms(sim.market.now_ms())
        collector = start_collector(new_db, sim.url, "--kinds", "future,option")
        wait_for(lambda: complete_until(new_db) > resumed, 60, "a scan after the outage")
        wait_for(lambda: open_trade_tasks(new_db) == 0, 240, "the gap's trades tasks")
        # The candles of the options that expired in the gap are planned with it and worked beside the trades:
        # waited for too (on a loaded machine they may finish after the last trades task).
        in_gap = [
            n
            for n in btc_names(sim, ("option",))
            if to_ms(before) < sim.market.instrument(n, sim.market.now_ms()).expiry_ms < to_ms(resumed)
        ]
        truth = {n: true_option_candles(sim, n, origin) for n in in_gap}
        wait_for(lambda: all(option_candles(new_db, n) == truth[n] for n in in_gap), 120, "the gap's option candles")
        _, err = stop(collector)
        assert "Traceback" not in err, err
        end = complete_until(new_db)
        names = btc_names(sim, ("future", "option"))
        want = tape(sim, names, origin, end)
        expired = [n for n in want if sim.market.instrument(n, to_ms(end)).expiry_ms < to_ms(resumed)]
        assert expired, "an option that expired during the outage traded before"
        assert sum(1 for n in want for t in want[n] if to_ms(before) <= t[0] < to_ms(resumed) - 86_400_000) > 0
        got = stored_trades(new_db, names, origin, end)
        diff = {
            n: (
                sorted(set(got.get(n, [])) - set(want.get(n, [])))[:3],
                sorted(set(want.get(n, [])) - set(got.get(n, [])))[:3],
            )
            for n in set(got) | set(want)
            if got.get(n) != want.get(n)
        }
        assert got == want, (diff, before, resumed, end)
        # the candles of the options that expired in the gap, which no later scan names: whole too
        expired_options = [n for n in expired if sim.market.instrument(n, to_ms(end)).is_option]
        assert expired_options
        for name in expired_options:
            assert option_candles(new_db, name) == true_option_candles(sim, name, origin), name


def fencing_scenario(conn: psycopg.Connection) -> None:
    """On one autocommit connection: a connection carrying the current leader epoch stores trades (deribit.trades
    is a hypertable) and their daily sums; once the epoch is taken over the same writes fail with the fencing
    SQLSTATE and write nothing; a connection without an epoch (a backfill) still writes."""
    row = ("BTC-8MAR24-60000-C", "2024-03-07 10:00:00.123+00", "T1", 1, 0.05, 1.0, "buy")
    insert = """INSERT INTO deribit.trades (instrument_name, ts, trade_id, trade_seq, price, amount, direction)
                VALUES (%s, %s, %s, %s, %s, %s, %s)"""
    refresh = "SELECT deribit_ts.refresh_trade_days(%s, '2024-03-07', '2024-03-08')"
    epoch = conn.execute("SELECT deribit_ts.collector_take_lease('first')").fetchone()[0]
    conn.execute("SELECT set_config('deribit_ts.leader_epoch', %s, false)", (str(epoch),))
    conn.execute(insert, row)
    conn.execute(refresh, (row[0],))
    conn.execute("SELECT set_config('deribit_ts.leader_epoch', '', false)")
    assert conn.execute("SELECT deribit_ts.collector_take_lease('second')").fetchone()[0] == epoch + 1
    conn.execute("SELECT set_config('deribit_ts.leader_epoch', %s, false)", (str(epoch),))
    for statement, params in ((insert, (*row[:2], "T2", 2, *row[4:])), (refresh, (row[0],))):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(statement, params)
        assert refused.value.sqlstate == "DT001", statement
    conn.execute("SELECT set_config('deribit_ts.leader_epoch', '', false)")  # a backfill: no epoch, not fenced
    conn.execute(insert, (*row[:2], "T3", 3, *row[4:]))
    conn.execute(refresh, (row[0],))
    trades = [t for (t,) in conn.execute("SELECT trade_id FROM deribit.trades ORDER BY trade_id")]
    days = conn.execute("SELECT trades FROM deribit_ts.trade_days WHERE instrument_name = %s", (row[0],)).fetchall()
    assert trades == ["T1", "T3"] and days == [(2,)]


def test_trade_writes_of_an_epoch_that_is_over_are_refused(new_db):
    with psycopg.connect(new_db, autocommit=True) as conn:
        fencing_scenario(conn)


@pytest.mark.slow
def test_an_options_last_traded_minute_is_fetched_again_once_settled(new_db):
    """A candle counts as final only when fetched after it settled (30 minutes); the option scan reads back far
    enough that an option's traded minute is fetched once more after that, even if the option never trades again
    (the scan used to stop seeing the trade just before the minute settled)."""
    with run_in_thread(sim_config(strikes_per_expiry=4, option_expiries=("day", "week"))) as sim:
        collector = start_collector(new_db, sim.url, "--kinds", "option")
        wait_for(lambda: collecting(new_db) or bool(trade_marks(new_db)), 30, "collecting")
        sim_minutes(sim, 42)
        checked_at = sim.market.now_ms()
        _, err = stop(collector)
        assert "Traceback" not in err, err
        with psycopg.connect(new_db) as conn:
            origin = conn.execute("SELECT origin FROM deribit_ts.collector_origin").fetchone()[0]
            final = dict(
                conn.execute(
                    "SELECT key, max(final_until) FROM deribit_ts.coverage WHERE dataset = 'candles' GROUP BY key"
                ).fetchall()
            )
    # a scan at least every 2 minutes, the minute, the 30 minutes' settling time, and a scan's margin
    settled_before = checked_at - 37 * 60_000
    checked = 0
    for name in btc_names(sim, ("option",)):
        minutes = [t.timestamp // 60_000 * 60_000 for t in sim.market.trades(name, to_ms(origin), settled_before)]
        if minutes:
            checked += 1
            assert name in final and to_ms(final[name]) >= minutes[-1] + 60_000, (name, from_ms(minutes[-1]))
    assert checked >= 2, "a few options should trade in the first minutes"


@pytest.mark.slow
def test_scanned_trades_are_covered_and_judged_against_their_candles(new_db):
    """What the scans store is their instruments' trades coverage: `deribit-ts coverage --dataset trades` holds the
    scanned span, the records of one instrument stay a few after dozens of scans, and candle_trades_mismatch judges
    the scan-stored minutes: nothing where the candles are the aggregate of the trades, exactly a planted candle
    that is not."""
    with run_in_thread(sim_config(**CHAIN)) as sim:
        collector = start_collector(new_db, sim.url, "--kinds", "perpetual,option")
        wait_for(lambda: collecting(new_db) or bool(trade_marks(new_db)), 30, "collecting")
        wait_for(lambda: len(trade_marks(new_db)) == 2, 30, "a first scan of each kind")
        first = dict(trade_marks(new_db))
        sim_minutes(sim, 45)  # past the option scans' trail (32 minutes) and the candles' settling time
        _, err = stop(collector)
        assert "Traceback" not in err, err
    done = run_cli("coverage", "--dataset", "trades", "--json", "--dsn", new_db)
    assert done.returncode == 0, done.stderr
    covered = {r["key"]: r for r in json.loads(done.stdout)}
    marks = trade_marks(new_db)
    with psycopg.connect(new_db) as conn:
        counted = dict(
            conn.execute(
                """SELECT k.key, (SELECT count(*) FROM deribit.trades t WHERE t.instrument_name = k.key
                                     AND t.ts >= k.lo AND t.ts < k.hi)
                     FROM (SELECT key, lower(wanted) AS lo, upper(wanted) AS hi FROM deribit_ts.targets
                            WHERE dataset = 'trades') k"""
            ).fetchall()
        )
        records = dict(
            conn.execute("SELECT key, count(*) FROM deribit_ts.coverage WHERE dataset = 'trades' GROUP BY key")
        )
    perpetual = covered["BTC-PERPETUAL"]
    assert perpetual["complete"] and perpetual["rows"] == counted["BTC-PERPETUAL"] > 0
    assert datetime.fromisoformat(perpetual["wanted_from"]) < first["perpetual_trades"]
    assert datetime.fromisoformat(perpetual["wanted_until"]) == marks["perpetual_trades"]
    options = [k for k in covered if k != "BTC-PERPETUAL"]
    assert options and all(covered[k]["complete"] and covered[k]["rows"] == counted[k] for k in options)
    assert sum(covered[k]["rows"] for k in options) > 0, "some option traded"
    # dozens of scans each: the settled records merged (a settled one, the unsettled tail, a crowded millisecond)
    assert max(records.values()) <= 3, records

    def mismatches(conn) -> list[tuple]:
        return conn.execute(
            """SELECT instrument_name, ts FROM deribit_ts.candle_trades_mismatch
                WHERE instrument_name = ANY(%s) ORDER BY 1, 2""",
            (list(covered),),
        ).fetchall()

    with psycopg.connect(new_db) as conn:
        assert mismatches(conn) == []
        # a traded minute of each kind that both the candles' and the trades' coverage hold settled
        judged = conn.execute(
            """SELECT DISTINCT ON (i.kind) i.instrument_name, c.ts
                 FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
                WHERE c.volume > 0 AND i.instrument_name = ANY(%s)
                  AND EXISTS (SELECT 1 FROM deribit_ts.coverage v
                               WHERE v.dataset = 'trades' AND v.key = i.instrument_name
                                 AND v.fetched @> tstzrange(c.ts, c.ts + interval '1 minute')
                                 AND v.final_until >= c.ts + interval '1 minute')
                  AND (SELECT range_agg(tstzrange(lower(v.fetched), least(upper(v.fetched), v.final_until)))
                         FROM deribit_ts.coverage v
                        WHERE v.dataset = 'candles' AND v.key = i.instrument_name
                          AND v.final_until > lower(v.fetched)) @> tstzrange(c.ts, c.ts + interval '1 minute')
                ORDER BY i.kind, c.ts DESC""",
            (list(covered),),
        ).fetchall()
        assert {name.endswith("PERPETUAL") for name, _ in judged} == {True, False}, judged
        for name, ts in judged:
            conn.execute(
                """UPDATE deribit.candles_1m SET high = high * 1.5
                    WHERE instrument_id = (SELECT id FROM deribit.instruments WHERE instrument_name = %s)
                      AND ts = %s""",
                (name, ts),
            )
        assert mismatches(conn) == sorted(judged)
