"""`deribit-ts backfill options`: every option by urgency tier, traded candles exact, fillers recorded not stored.

Real CLI, real ccxt, real HTTP to the simulator, real TimescaleDB; every check is against the simulator's truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import backfill, cli_command, run_cli

from deribit_ts.ingest.options import TIERS
from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.timeutil import MINUTE_MS, ceil_ms, from_ms, to_ms

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
SINCE = NOW - timedelta(days=1)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
THIN = 0.25  # a quarter of the real-sized chain (~200 BTC options live, more expired): the same tiers, faster


@pytest.fixture(scope="module")
def sim():
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", option_strike_density=THIN)) as handle:
        yield handle


def tier_of(expiry: datetime) -> str:
    days = (expiry - NOW) / timedelta(days=1)
    return "critical" if days < 7 else "high" if days < 30 else "medium" if days < 90 else "low"


def sim_options(sim) -> dict[str, datetime]:
    """Every BTC option the simulator lists, active and recently expired, with its expiry."""
    return {
        i.name: from_ms(i.expiry_ms)
        for expired in (False, True)
        for i in sim.market.instruments("BTC", "option", expired=expired)
    }


def truth(sim, name: str, since: datetime, until: datetime) -> tuple[list[tuple], list[datetime]]:
    """The simulator's traded candles and filler minutes of `name` in [since, until)."""
    got = sim.market.candles(name, to_ms(since), ceil_ms(to_ms(until), MINUTE_MS) - MINUTE_MS)
    rows = [
        (from_ms(t), *v)
        for t, *v in zip(*(got[c] for c in ("ticks", "open", "high", "low", "close", "volume", "cost")), strict=True)
        if to_ms(since) <= t < to_ms(until)
    ]
    traded = [r for r in rows if not (r[5] == 0 and r[6] == 0 and r[1] == r[2] == r[3] == r[4])]
    fillers = [r[0] for r in rows if r not in traded]
    return traded, fillers


def stored(dsn: str, name: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT ts, open, high, low, close, volume, cost FROM deribit.ohlcv_1m
                               WHERE instrument_name = %s ORDER BY ts""",
            (name,),
        ).fetchall()


def filled_minutes(dsn: str, name: str) -> list[datetime]:
    with psycopg.connect(dsn) as conn:
        return [
            ts
            for (ts,) in conn.execute(
                """SELECT generate_series(lower(r), upper(r) - interval '1 minute', interval '1 minute')
                 FROM deribit_ts.coverage, unnest(filled) AS r
                WHERE dataset = 'candles' AND key = %s ORDER BY 1""",
                (name,),
            )
        ]


def test_dry_run_prints_the_tiers_and_writes_nothing(sim, new_db):
    before = counts(new_db)
    result = run_cli(
        "backfill",
        "options",
        "--currency",
        "BTC",
        "--dry-run",
        "--json",
        "--dsn",
        new_db,
        "--api-url",
        sim.url,
        env=NO_LIMITER,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    expected = {tier: 0 for tier in TIERS}
    for expiry in sim_options(sim).values():
        expected[tier_of(expiry)] += 1
    assert plan["tiers"] == expected
    assert all(plan["plan"][t]["tasks"] >= plan["plan"][t]["options"] for t in TIERS)
    assert counts(new_db) == before == (0, 0, 0, 0)
    text = run_cli(
        "backfill", "options", "--currency", "BTC", "--dry-run", "--dsn", new_db, "--api-url", sim.url, env=NO_LIMITER
    )
    assert text.returncode == 0 and all(tier in text.stdout for tier in TIERS), text.stderr


def counts(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute("""SELECT (SELECT count(*) FROM deribit.instruments),
                                      (SELECT count(*) FROM deribit_ts.tasks), (SELECT count(*) FROM deribit_ts.runs),
                                      (SELECT count(*) FROM deribit_ts.coverage)""").fetchone()


@pytest.mark.slow
def test_critical_first_expired_reached_and_candles_exact(sim, new_db):
    summary = backfill(new_db, sim.url, "options", "--currency", "BTC", "--since", SINCE.isoformat(), "--workers", "1")
    assert summary["status"] == "ok"
    options = {n: e for n, e in sim_options(sim).items() if e > SINCE}
    assert summary["coverage"]["candles"] == {
        "keys": len(options),
        "complete": len(options),
        "rows": summary["coverage"]["candles"]["rows"],
    }
    with psycopg.connect(new_db) as conn:
        # One worker: the order in which keys were first committed is the order they were claimed.
        order = [
            key
            for (key,) in conn.execute(
                "SELECT key FROM deribit_ts.coverage WHERE dataset = 'candles' GROUP BY key ORDER BY min(coverage_id)"
            )
        ]
    tiers = [TIERS.index(tier_of(options[k])) for k in order]
    assert tiers == sorted(tiers), "tiers out of order"
    critical = [k for k in order if tier_of(options[k]) == "critical"]
    assert [options[k] for k in critical] == sorted(options[k] for k in critical), "soonest expiry first"
    expired = [k for k in order if options[k] <= NOW]
    assert expired and order[: len(expired)] == expired, "expired options are reached, first"

    checked = 0
    for name in [*expired[:3], *order[-3:], *order[len(order) // 2 : len(order) // 2 + 3]]:
        until = min(options[name], NOW.replace(second=0))
        traded, fillers = truth(sim, name, SINCE, until)
        assert stored(new_db, name) == traded, name
        assert filled_minutes(new_db, name) == fillers, name
        checked += bool(traded)
    assert checked >= 3, "the sample should include traded options"

    second = backfill(new_db, sim.url, "options", "--currency", "BTC", "--since", SINCE.isoformat())
    assert second["datasets"]["candles"]["inserted"] == 0  # only the unsettled tail is fetched again


def test_a_busted_trade_is_removed_when_the_exchange_shows_a_filler(sim, new_db):
    day = (NOW - timedelta(days=2)).replace(hour=0, minute=0)
    until = day + timedelta(days=1)
    # An option alive all day that traded in some minutes and not in others.
    name = next(n for n, e in sorted(sim_options(sim).items()) if e > until and all(truth(sim, n, day, until)))
    args = ("candles", "--instrument", name, "--since", day.isoformat(), "--until", until.isoformat())
    backfill(new_db, sim.url, *args)
    _, fillers = truth(sim, name, day, day + timedelta(days=1))
    with psycopg.connect(new_db, autocommit=True) as conn:
        # Pretend an earlier fetch saw a trade in a minute the exchange now answers as a filler.
        conn.execute(
            """INSERT INTO deribit.candles_1m SELECT id, %s, 1, 2, 0.5, 1.5, 3, 4 FROM deribit.instruments
                        WHERE instrument_name = %s""",
            (fillers[0], name),
        )
        conn.execute("DELETE FROM deribit_ts.coverage")
    summary = backfill(new_db, sim.url, *args)
    assert summary["datasets"]["candles"]["revised"] == 1
    assert stored(new_db, name) == truth(sim, name, day, day + timedelta(days=1))[0]


@pytest.mark.slow
def test_kill_9_during_an_options_backfill_loses_and_duplicates_nothing(new_db):
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", latency_ms=30, option_strike_density=THIN)) as slow:
        args = [
            "backfill",
            "options",
            "--currency",
            "BTC",
            "--since",
            SINCE.isoformat(),
            "--quiet",
            "--workers",
            "4",
            "--dsn",
            new_db,
            "--api-url",
            slow.url,
        ]
        env = {**os.environ, **NO_LIMITER}
        victim = subprocess.Popen(cli_command(*args), env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and victim.poll() is None:
            with psycopg.connect(new_db) as conn:
                if conn.execute("SELECT count(*) FROM deribit_ts.coverage").fetchone()[0] >= 20:
                    break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        with psycopg.connect(new_db) as conn:
            partial = conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state = 'done'").fetchone()[0]
            total = conn.execute("SELECT count(*) FROM deribit_ts.tasks").fetchone()[0]
        assert 0 < partial < total, "the kill should land in the middle of the backfill"
        resumed = subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        options = {n: e for n, e in sim_options(slow).items() if e > SINCE}
        with psycopg.connect(new_db) as conn:
            incomplete = conn.execute("SELECT count(*) FROM deribit.coverage WHERE NOT complete").fetchone()[0]
            per_key = dict(
                conn.execute(
                    """SELECT i.instrument_name, count(*) FROM deribit.candles_1m c
                     JOIN deribit.instruments i ON i.id = c.instrument_id GROUP BY 1"""
                )
            )
        assert incomplete == 0
        for name, expiry in options.items():
            traded, _ = truth(slow, name, SINCE, min(expiry, NOW.replace(second=0)))
            assert per_key.get(name, 0) == len(traded), name
        for name in list(options)[::25]:
            assert stored(new_db, name) == truth(slow, name, SINCE, min(options[name], NOW.replace(second=0)))[0]
