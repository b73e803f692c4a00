"""The collector against a hostile exchange: the index chart answers 1e308 and DVOL answers NaN (not JSON) on every
request. The collector keeps running and keeps every other dataset fresh; the errors reach the heartbeat's
last_error, `status` and a /fail ping, with the exchange's words. (Before, it died seconds after every start.)
"""

from __future__ import annotations

import json

import psycopg
import pytest
import test_collect as tc
from helpers import run_cli
from hostile import hostile_exchange


@pytest.mark.slow
def test_bad_replies_fail_their_dataset_and_the_collector_goes_on(new_db):
    def answer(method: str, params: dict, reply: dict):
        if "result" not in reply:
            return None
        if method == "get_index_chart_data":
            reply["result"][-1][1] = 1e308
            return reply
        if method == "get_volatility_index_data" and reply["result"]["data"]:
            reply["result"]["data"][0][2] = float("nan")
            return reply
        return None

    with (
        tc.run_in_thread(tc.sim_config()) as sim,
        hostile_exchange(answer, upstream=sim.url) as (url, _),
        tc.healthcheck_server() as (ping_url, pings),
    ):
        collector = tc.start_collector(new_db, url, "--healthcheck-url", ping_url)
        try:
            tc.wait_for(lambda: tc.collecting(new_db), 60, "the collector to collect")
            tc.sim_minutes(sim, 12)  # twice the time it took to die before
            assert collector.poll() is None, tc.logs(collector)[-3000:]
            tc.wait_for(
                lambda: (tc.freshness(new_db, sim)["candles.perpetual"] or 1e9) < tc.MAX_LAG_S, 30, "fresh candles"
            )
            with psycopg.connect(new_db) as conn:
                beat = conn.execute(
                    "SELECT state, last_error FROM deribit_ts.collector_status WHERE holds_lock"
                ).fetchone()
                failed = dict(  # failed, or already set to be tried again (its error kept) by the next plan
                    conn.execute(
                        "SELECT dataset, last_error FROM deribit_ts.tasks WHERE last_error IS NOT NULL AND priority < 0"
                    ).fetchall()
                )
                stored = conn.execute(
                    """SELECT (SELECT count(*) FROM deribit.index_price_history WHERE price > 1e9),
                              (SELECT count(*) FROM deribit.volatility_index WHERE high = 'NaN')"""
                ).fetchone()
            status = json.loads(run_cli("status", "--json", "--dsn", new_db).stdout)
        finally:
            _, err = tc.stop(collector)
    assert beat is not None and beat[0] == "collecting", beat
    assert beat[1] and ("public/get_index_chart_data" in beat[1] or "public/get_volatility_index_data" in beat[1])
    assert "1e+308" in failed.get("index", ""), failed
    assert "NaN" in failed.get("dvol", "") and "cannot reach" not in failed["dvol"], failed
    assert stored == (0, 0)
    errors = {d["dataset"]: d.get("last_error") or "" for d in status["datasets"]}
    assert "1e+308" in errors["index"] and "NaN" in errors["dvol"], errors
    fails = [body for path, body in pings if path.endswith("/fail")]
    assert any("1e+308" in body or "NaN" in body for body in fails), pings
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_bad_trades_page_fails_the_trade_scan_and_nothing_of_it_is_stored(new_db):
    """A by-currency trades page with a trade of no known direction: the scan fails with the exchange's words
    (status shows the trade tape stale with them), nothing of that page is stored, everything else goes on."""

    def answer(method: str, params: dict, reply: dict):
        trades = (reply.get("result") or {}).get("trades") if method == "get_last_trades_by_currency_and_time" else None
        if trades:
            trades[-1]["direction"] = "sideways"
            return reply
        return None

    with (
        tc.run_in_thread(tc.sim_config()) as sim,
        hostile_exchange(answer, upstream=sim.url) as (url, _),
    ):
        collector = tc.start_collector(new_db, url, "--kinds", "perpetual")
        try:
            tc.wait_for(lambda: tc.collecting(new_db), 60, "the collector to collect")
            tc.sim_minutes(sim, 5)
            assert collector.poll() is None, tc.logs(collector)[-3000:]
            tc.wait_for(
                lambda: (tc.freshness(new_db, sim)["candles.perpetual"] or 1e9) < tc.MAX_LAG_S, 30, "fresh candles"
            )
            with psycopg.connect(new_db) as conn:
                stored = conn.execute("SELECT count(*) FROM deribit.trades").fetchone()[0]
            status = json.loads(run_cli("status", "--json", "--dsn", new_db).stdout)
        finally:
            _, err = tc.stop(collector)
    tape = {d["dataset"]: d for d in status["datasets"]}["trades.perpetual"]
    assert stored == 0 and tape["stale"] and "sideways" in (tape["last_error"] or ""), tape
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_statement_the_database_refuses_stops_collecting_not_the_collector(new_db):
    """A database that refuses the collector's statements (here a constraint that forbids claiming a task; in life a
    slip of ours, a privilege revoked, a server fault) ends its leadership, which a restart would meet again: the
    collector stays up, says why (its log, the run log, a /fail ping), tries again after a pause, and collects
    again once the database accepts. (It exited, and under systemd that was a crash loop that reported nothing.)"""
    with tc.run_in_thread(tc.sim_config()) as sim, tc.healthcheck_server() as (ping_url, pings):
        collector = tc.start_collector(new_db, sim.url, "--healthcheck-url", ping_url)
        try:
            tc.wait_for(lambda: tc.collecting(new_db), 60, "the collector to collect")
            with psycopg.connect(new_db, autocommit=True) as conn:
                conn.execute(
                    "ALTER TABLE deribit_ts.tasks ADD CONSTRAINT no_claims CHECK (state <> 'running') NOT VALID"
                )
            tc.wait_for(lambda: "no_claims" in tc.logs(collector), 60, "the refusal in the collector's log")
            tc.sim_minutes(sim, 10)  # a few retries
            assert collector.poll() is None, tc.logs(collector)[-3000:]
            with psycopg.connect(new_db, autocommit=True) as conn:
                interrupted = conn.execute(
                    "SELECT error FROM deribit_ts.runs WHERE command = 'collect' AND status = 'interrupted'"
                ).fetchall()
                conn.execute("ALTER TABLE deribit_ts.tasks DROP CONSTRAINT no_claims")
            since = sim.market.now_ms()
            tc.wait_for(
                lambda: (tc.freshness(new_db, sim)["candles.perpetual"] or 1e9) < tc.MAX_LAG_S,
                60,
                "fresh candles once the database accepts again",
            )
            with psycopg.connect(new_db) as conn:
                newest = conn.execute(
                    """SELECT max(c.ts) FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
                        WHERE i.instrument_name = 'BTC-PERPETUAL'"""
                ).fetchone()[0]
        finally:
            _, err = tc.stop(collector)
    assert interrupted and all("no_claims" in (error or "") for (error,) in interrupted), interrupted
    assert newest is not None and tc.to_ms(newest) >= since - 2 * tc.MINUTE_MS
    fails = [body for path, body in pings if path.endswith("/fail")]
    assert any("no_claims" in body for body in fails), pings
    assert "Traceback" not in err and "retrying in" in err
