"""`deribit-ts snapshot options` and deribit_ts.ingest.snapshots.take_snapshot against the simulator and a real
TimescaleDB: one `ts` and one transaction per round, the exchange's greeks (or SQL's with --bulk-only), the
allowance kept, a killed round leaving nothing, errors in one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime

import psycopg
import pytest
from helpers import cli_command, run_cli
from sim_fixtures import SIM_NOW, SIM_NOW_MS, sim_config

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.limiter import CreditLimiter
from deribit_ts.ingest.snapshots import take_snapshot
from deribit_ts.sim import run_in_thread
from deribit_ts.sim import snapshots as sim_snapshots
from deribit_ts.timeutil import from_ms

NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
# The allowance check runs at SCALE times Deribit's allowance on both sides (the simulator's credit pools and
# refill, and the client's limiter), so a 1,732-option round takes ~21 s instead of ~85 s. The check scales the
# same way: the round may take at most 1.2 x its requests / (20 x SCALE) seconds.
SCALE = 4.0


async def _snapshot(dsn: str, url: str, limiter: CreditLimiter, **kwargs):
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
        DeribitClient(url, limiter=limiter) as client,
    ):
        result = await take_snapshot(conn, client, ["BTC", "ETH"], **kwargs)
        return result, client.stats


def _rows(dsn: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


@pytest.mark.slow
def test_a_real_sized_round_stays_inside_the_allowance(new_db) -> None:
    config = sim_config(option_strike_density=1.0, rate_limit="deribit", rate_limit_scale=SCALE)
    with run_in_thread(config) as sim:
        # Warm the simulator (a real exchange answers a book summary in ~0.1 s; a cold simulator generates two
        # days of candles per option for the 24 h statistics first): the check is about the client's pacing.
        for currency in ("BTC", "ETH"):
            sim_snapshots.book_summaries(sim.market, sim.market.instruments(currency, "option"), SIM_NOW_MS)
        started = time.monotonic()
        # (without the research rows: their seconds of fitting are the same at any rate-limit scale, so at x4 they
        # would be judged against a quarter of the allowance; test_cli_round... checks they are written)
        result, stats = asyncio.run(_snapshot(new_db, sim.url, CreditLimiter(SCALE), research=False))
        elapsed = time.monotonic() - started
        served = sim.stats()
    assert result.options >= 1500 and result.written == result.options
    assert result.by_currency["BTC"] + result.by_currency["ETH"] == result.options
    assert "10028" not in served["errors_by_code"] and stats.throttled == 0
    assert served["requests_by_method"]["ticker"] == result.options
    limit_s = 1.2 * result.requests / (20 * SCALE)
    print(
        f"round: {result.options} options, {result.requests} requests in {elapsed:.1f} s "
        f"(allowance {result.requests / (20 * SCALE):.1f} s at x{SCALE:g}, limit {limit_s:.1f} s)"
    )
    assert elapsed <= limit_s
    # one instant for the whole round; each quote's own timestamp kept; every greek from the exchange
    rows = _rows(
        new_db,
        """
        SELECT count(*), count(DISTINCT ts), min(ts), max(quote_ts), count(delta), count(gamma), count(vega),
               count(theta), count(rho), count(*) FILTER (WHERE greeks_source = 'ticker')
          FROM deribit.option_snapshots""",
    )
    assert rows == [(result.options, 1, SIM_NOW, SIM_NOW, *[result.options] * 6)]
    assert _rows(new_db, "SELECT currency, options, bulk_only FROM deribit_ts.snapshot_rounds ORDER BY 1") == [
        ("BTC", result.by_currency["BTC"], False),
        ("ETH", result.by_currency["ETH"], False),
    ]


def test_rows_are_the_exchanges_tickers_and_bulk_only_fills_greeks_in_sql(new_db) -> None:
    with run_in_thread(sim_config()) as sim:
        full, _ = asyncio.run(_snapshot(new_db, sim.url, CreditLimiter(enabled=False)))
        sim.set_now(SIM_NOW_MS + 60_000)
        bulk, stats = asyncio.run(_snapshot(new_db, sim.url, CreditLimiter(enabled=False), bulk_only=True))
        market = sim.market
        sample = [i for c in ("BTC", "ETH") for i in market.instruments(c, "option", now_ms=SIM_NOW_MS)][::7]
        tickers = [sim_snapshots.ticker(market, i, SIM_NOW_MS) for i in sample]
    assert bulk.requests == 3 and bulk.greeks_from_sql == bulk.options == full.options  # get_time + 2 summaries
    stored = {
        r[0]: r[1:]
        for r in _rows(
            new_db,
            """SELECT instrument_name, mark_price, mark_iv, bid_iv, ask_iv, underlying_price, underlying_index,
                          delta, gamma, vega, theta, rho, open_interest, best_bid_price, greeks_source
                     FROM deribit.option_snapshots WHERE ts = %s""",
            (SIM_NOW,),
        )
    }
    for t in tickers:
        g = t["greeks"]
        assert stored[t["instrument_name"]] == (
            t["mark_price"],
            t["mark_iv"],
            t["bid_iv"],
            t["ask_iv"],
            t["underlying_price"],
            t["underlying_index"],
            g["delta"],
            g["gamma"],
            g["vega"],
            g["theta"],
            g["rho"],
            t["open_interest"],
            t["best_bid_price"],
            "ticker",
        )
    assert any(t["best_bid_price"] is None and stored[t["instrument_name"]][2] == 0 for t in tickers)  # no bid
    # bulk-only: greeks from deribit.black76_greeks on the bulk mark IV, T from the quote's own timestamp
    worst = _rows(
        new_db,
        """
        SELECT max(abs(s.delta - g.delta)), max(abs(s.vega - g.vega)), count(*), count(s.bid_iv)
          FROM deribit.option_snapshots s
         CROSS JOIN LATERAL deribit.black76_greeks(s.option_type, s.underlying_price, s.strike,
                extract(epoch FROM s.expiry - s.quote_ts) / (365 * 86400), s.mark_iv) g
         WHERE s.ts = %s""",
        (SIM_NOW.replace(minute=1),),
    )
    assert worst == [(0.0, 0.0, bulk.options, 0)]
    # a minute apart, the exchange's deltas and SQL's are close (exactness: tests/test_black76.py)
    apart = _rows(
        new_db,
        """
        SELECT max(abs(a.delta - b.delta)) FROM deribit.option_snapshots a
          JOIN deribit.option_snapshots b USING (instrument_name)
         WHERE a.greeks_source = 'ticker' AND b.greeks_source = 'sql'""",
    )[0][0]
    assert apart < 0.05


def test_cli_round_json_run_log_and_one_line_errors(new_db) -> None:
    with run_in_thread(sim_config()) as sim:
        env = {**NO_LIMITER, "DERIBIT_TS_DSN": new_db, "DERIBIT_TS_API_URL": sim.url}
        done = run_cli("snapshot", "options", "--currency", "btc", "--json", env=env)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        bad = run_cli("snapshot", "options", "--currency", "BTC,DOGE", env=env)
    assert summary["status"] == "ok" and summary["by_currency"] == {"BTC": summary["options"]} and summary["options"]
    assert summary["ts"] == SIM_NOW.isoformat() and summary["run_id"]
    assert _rows(new_db, "SELECT command, status, requests > 0 FROM deribit_ts.runs") == [
        ("snapshot options", "ok", True)
    ]
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "DOGE" in bad.stderr
    assert "Traceback" not in bad.stderr
    closed = run_cli(
        "snapshot",
        "options",
        "--quiet",
        env={**env, "DERIBIT_TS_API_URL": "http://127.0.0.1:9", "DERIBIT_TS_MAX_RETRIES": "0"},
    )
    assert closed.returncode != 0 and closed.stderr.count("\n") == 1 and "Traceback" not in closed.stderr
    assert _rows(new_db, "SELECT count(*) FROM deribit.option_snapshots")[0][0] == summary["options"]
    # the round's research rows are written with it: a row per tenor, SVI fits of its smiles
    assert _rows(new_db, "SELECT currency, ts FROM deribit_ts.option_round_summaries") == [("BTC", SIM_NOW)]
    assert _rows(new_db, "SELECT count(*), count(atm_iv) > 0 FROM deribit.iv_constant_maturity") == [(6, True)]
    assert _rows(new_db, "SELECT count(*) > 0, max(rmse_iv) < 5 FROM deribit.svi_fit") == [(True, True)]


@pytest.mark.slow
def test_kill_9_during_a_round_leaves_nothing_and_the_next_round_is_whole(new_db) -> None:
    """SIGKILL while the tickers are being fetched: the round was one transaction, so nothing of it is stored;
    the next round stores every option exactly once."""
    with run_in_thread(sim_config(rate_limit="deribit")) as sim:
        env = {**os.environ, "DERIBIT_TS_DSN": new_db, "DERIBIT_TS_API_URL": sim.url}
        args = cli_command("snapshot", "options", "--quiet")
        victim = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while sim.stats()["requests_by_method"].get("ticker", 0) < 150 and time.monotonic() < deadline:
            assert victim.poll() is None, "the round ended before it could be killed"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert _rows(
            new_db,
            "SELECT (SELECT count(*) FROM deribit.option_ticker_snapshots), "
            "(SELECT count(*) FROM deribit_ts.snapshot_rounds)",
        ) == [(0, 0)]
    # The next round a minute later, from the same (seeded) market without the allowance: what it stores is the
    # point, not its pacing (against the limited one, an unpaced client spent ~35 s on thousands of 10028 retries).
    with run_in_thread(sim_config(now=from_ms(SIM_NOW_MS + 60_000))) as sim:
        env = {**env, **NO_LIMITER, "DERIBIT_TS_API_URL": sim.url}
        again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        chain = len(sim.market.instruments("BTC", "option")) + len(sim.market.instruments("ETH", "option"))
    assert again.returncode == 0, again.stderr
    assert _rows(
        new_db, "SELECT count(*), count(DISTINCT instrument_name), count(DISTINCT ts) FROM deribit.option_snapshots"
    ) == [(chain, chain, 1)]


@pytest.mark.parametrize("blank", ["", " , "])
def test_blank_currency_is_refused(blank: str) -> None:
    done = run_cli("snapshot", "options", "--currency", blank, env={"DERIBIT_TS_DSN": "postgresql://127.0.0.1:9/x"})
    assert done.returncode != 0 and "currency" in done.stderr and "Traceback" not in done.stderr


def test_options_expiring_during_the_round_are_skipped_not_stored(new_db) -> None:
    """The book summary lists an option expiring at 08:00; by the time its ticker is asked it has expired (state
    closed): it is reported as skipped and no row of it is stored."""
    expiry = datetime(2024, 3, 2, 8, tzinfo=UTC)
    with run_in_thread(sim_config(clock_speed=1.0)) as sim:
        # the round starts 0.8 s before the expiry: its book summary lists the 08:00 options, and the catalogue
        # refresh and the summaries take longer than that before the first ticker is asked
        sim.set_now(int(expiry.timestamp() * 1000) - 800)
        result, _ = asyncio.run(_snapshot(new_db, sim.url, CreditLimiter(enabled=False)))
    expiring = [n for n in result.skipped if n.startswith(("BTC-2MAR24-", "ETH-2MAR24-"))]
    assert expiring and expiring == result.skipped
    assert _rows(new_db, "SELECT count(*) FROM deribit.option_snapshots WHERE expiry <= quote_ts") == [(0,)]
    assert _rows(new_db, "SELECT count(*) FROM deribit.option_snapshots") == [(result.options,)]
