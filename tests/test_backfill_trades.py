"""`deribit-ts backfill trades`: every trade exactly once, expired options and a liquidation cascade included.

Real CLI, real ccxt, real HTTP to the simulator, real TimescaleDB; every check is against the simulator's tape.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import helpers
import psycopg
import pytest
from helpers import cli_command, run_cli

from deribit_ts.ingest.trades import PAGE, PERPETUAL_TRADES, TRADES, Trades
from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.sim.paths import DAY_MS
from deribit_ts.timeutil import from_ms, to_ms

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
SINCE = datetime(2024, 2, 28, tzinfo=UTC)
UNTIL = datetime(2024, 3, 1, 11, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
COLUMNS = ", ".join(TRADES.columns)


@pytest.fixture(scope="module")
def sim():
    # Every expiry of the option chain, four strikes each: the option test backfills each listed option's trades
    # (a task apiece), and what it checks holds for any number of them.
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", strikes_per_expiry=4)) as handle:
        yield handle


def backfill(dsn: str, url: str, *args: str) -> dict:
    return helpers.backfill(dsn, url, "trades", *args)


def truth(sim, names: list[str], since: datetime, until: datetime) -> list[tuple]:
    """The simulator's trades of `names` in [since, until) as rows of deribit.trades."""
    out = []
    for name in names:
        inst = sim.market.instrument(name)
        tape = sim.market.trades(name, to_ms(since), to_ms(until) - 1, limit=10**9)
        for t in sim.market.trades_json(inst, tape):
            out.append(
                (
                    name,
                    from_ms(t["timestamp"]),
                    t["trade_id"],
                    t["trade_seq"],
                    t["price"],
                    t["amount"],
                    t["direction"],
                    t["tick_direction"],
                    t["mark_price"],
                    t["index_price"],
                    t.get("iv"),
                    t.get("liquidation"),
                    t.get("block_trade_id"),
                    None,
                    t["contracts"],
                    t.get("block_trade_leg_count"),
                    None,
                )
            )
    return sorted(out, key=lambda r: (r[0], r[3]))


def stored(dsn: str, where: str = "true", params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT {COLUMNS} FROM deribit.trades WHERE {where} ORDER BY instrument_name, trade_seq", params
        ).fetchall()


def btc_options(sim) -> list[str]:
    """Every BTC option that traded between SINCE and UNTIL, active and expired."""
    names = {i.name for expired in (False, True) for i in sim.market.instruments("BTC", "option", expired=expired)}
    return sorted(n for n in names if sim.market.trades(n, to_ms(SINCE), to_ms(UNTIL) - 1, limit=1))


@pytest.mark.slow
def test_option_trades_exact_and_rerun_changes_nothing(db: str, sim) -> None:
    summary = backfill(db, sim.url, "--currency", "BTC", "--kind", "option", "--since", "2024-02-28", "--until",
                       "2024-03-01T11:00")  # fmt: skip
    assert summary["status"] == "ok"
    names = btc_options(sim)
    expired = [n for n in names if sim.market.instrument(n).expiry_ms <= to_ms(NOW)]
    assert expired, "the window holds options that expired since"
    want = truth(sim, names, SINCE, UNTIL)
    got = stored(db)
    assert len(got) == len(want) and got == want
    assert summary["datasets"]["trades"]["inserted"] == len(want)
    again = backfill(db, sim.url, "--currency", "BTC", "--kind", "option", "--since", "2024-02-28", "--until",
                     "2024-03-01T11:00")  # fmt: skip
    assert again["datasets"].get("trades", {}).get("inserted", 0) == 0
    assert stored(db) == got


def test_dry_run_counts_the_windows_of_futures_and_perpetuals(new_db: str, sim) -> None:
    result = run_cli("backfill", "trades", "--instrument", "BTC-PERPETUAL", "--since", "2024-02-28", "--until",
                     "2024-03-01T11:00", "--dry-run", "--json", "--dsn", new_db, "--api-url", sim.url,
                     env=NO_LIMITER)  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["futures"]
    hours = (UNTIL - SINCE) // timedelta(hours=1)  # a perpetual's first window is an hour: one request each
    assert (plan["instruments"], plan["tasks"], plan["requests"]) == (1, 1, hours)
    assert stored(new_db) == []


def _burst_day(sim) -> datetime:
    inst = sim.market.instrument("BTC-PERPETUAL")
    day = next(
        d for d in range(to_ms(NOW) // DAY_MS - 1, to_ms(NOW) // DAY_MS - 60, -1) if sim.market.block(inst, d).bursts
    )
    return from_ms(day * DAY_MS)


@pytest.mark.slow
def test_cascade_in_one_millisecond_survives_kill_9(fresh_db: str, sim) -> None:
    """A perpetual's day with thousands of trades in one millisecond: killed mid-run, resumed, every trade once."""
    day = _burst_day(sim)
    until = (day + timedelta(days=1)).isoformat()
    args = ["backfill", "trades", "--instrument", "BTC-PERPETUAL", "--since", day.isoformat(), "--until", until,
            "--workers", "2", "--quiet", "--dsn", fresh_db, "--api-url", sim.url]  # fmt: skip
    env = {**os.environ, **NO_LIMITER}
    proc = subprocess.Popen(cli_command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            with psycopg.connect(fresh_db) as conn:
                exists = conn.execute("SELECT to_regclass('deribit_ts.coverage') IS NOT NULL").fetchone()[0]
                done = (
                    exists
                    and conn.execute("SELECT count(*) FROM deribit_ts.coverage WHERE dataset = 'trades'").fetchone()[0]
                )
            if done and done >= 2:  # of 5 windows: they grow with the trades seen (1 h, 1 h, 4 h, 4 h, 14 h)
                break
            time.sleep(0.2)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "the run ended before it could be killed"
    partial = stored(fresh_db)
    result = run_cli(*args[:-4], "--json", "--dsn", fresh_db, "--api-url", sim.url, env=NO_LIMITER, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    want = truth(sim, ["BTC-PERPETUAL"], day, day + timedelta(days=1))
    got = stored(fresh_db)
    assert got == want
    assert summary["datasets"]["trades"]["inserted"] == len(want) - len(partial)
    # the cascade: thousands of liquidations at one millisecond, all stored
    with psycopg.connect(fresh_db) as conn:
        n = conn.execute(
            """SELECT count(*) FROM deribit.trades WHERE liquidation = 'T'
                GROUP BY ts ORDER BY count(*) DESC LIMIT 1"""
        ).fetchone()[0]
    assert n >= 1500


@pytest.mark.slow
def test_windows_grow_to_full_pages_on_a_dense_instrument(fresh_db: str) -> None:
    """Requests are what the exchange limits: a perpetual's windows grow from an hour (a third of a page in the
    simulator) until each holds about 20 full pages, so its trades take about one request per 1,000."""
    with run_in_thread(SimConfig(now=NOW, rate_limit="off")) as fresh_sim:
        since, until = SINCE - timedelta(days=5), SINCE
        summary = backfill(fresh_db, fresh_sim.url, "--instrument", "BTC-PERPETUAL", "--kind", "perpetual",
                           "--since", since.isoformat(), "--until", until.isoformat(), "--workers", "1")  # fmt: skip
        served = fresh_sim.stats()["requests_by_method"]
        assert summary["status"] == "ok"
        assert stored(fresh_db) == truth(fresh_sim, ["BTC-PERPETUAL"], since, until)
    trades = summary["datasets"]["trades"]["inserted"]
    requests = served.get("get_last_trades_by_instrument_and_time", 0) + served.get("get_last_trades_by_instrument", 0)
    assert trades > 30 * PAGE
    assert requests <= 1.15 * trades / PAGE + 6  # 6: the first windows, an hour long, before the rate is known


def test_window_length_follows_the_rate_within_bounds() -> None:
    dataset = Trades(window=timedelta(hours=1), task_span=timedelta(days=7))
    hour, start, far = 3_600_000, 0, 10**12
    assert dataset.window_end("X", start, far) == hour  # nothing seen: the kind's first window
    dataset._learn("X", hour, 500)  # 500 trades an hour: 20 pages would take 40 hours, but 4x at most a step
    assert dataset.window_end("X", start, far) == 4 * hour
    dataset._learn("X", 4 * hour, 2000)
    assert dataset.window_end("X", start, far) == 16 * hour
    dataset._learn("X", 16 * hour, 8000)  # 20 pages at this rate: 40 hours
    assert dataset.window_end("X", start, far) == 40 * hour
    assert dataset.window_end("X", start, 5 * hour) == 5 * hour  # never past the task's end
    dataset._learn("X", hour, 10**7)  # a cascade: shrinks 4x a step, never below a minute
    assert dataset.window_end("X", start, far) == hour // 4
    dataset._learn("X", 60_000, 10**7)
    assert dataset.window_end("X", start, far) == 60_000
    dataset._learn("Z", hour, 500)
    dataset._learn("Z", 60_000, 0)  # a task's last window, cut short: grows from the length it had
    assert dataset.window_end("Z", start, far) == 16 * hour
    assert dataset.window_end("Y", start, far) == hour  # per instrument
    assert PERPETUAL_TRADES.task_span == timedelta(days=7)
