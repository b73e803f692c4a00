"""`deribit-ts backfill dvol` and `backfill delivery`: exact against the simulator, resumable, idempotent.

The simulator under test pages DVOL in small pages (so `continuation` is followed many times); the truth comes
from a SimMarket of the same seed that answers any range in one page.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from helpers import backfill, cli_command, run_cli

from deribit_ts.sim import SimConfig, SimMarket, run_in_thread
from deribit_ts.timeutil import from_ms, to_ms

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
TRUTH = SimMarket(SimConfig(now=NOW, dvol_max_rows=10**8))


@pytest.fixture(scope="module")
def sim():
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", dvol_max_rows=700)) as handle:
        yield handle


def true_dvol(currency: str, since: datetime, until: datetime) -> list[tuple]:
    rows = TRUTH.dvol(currency, to_ms(since), to_ms(until) - 1, 60, to_ms(NOW))["data"]
    return [(from_ms(r[0]), *r[1:]) for r in rows]


def stored_dvol(dsn: str, currency: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT ts, open, high, low, close FROM deribit.volatility_index
                               WHERE currency = %s ORDER BY ts""",
            (currency,),
        ).fetchall()


def test_dvol_is_exact_across_pages_and_a_second_run_changes_nothing(sim, new_db):
    since, until = datetime(2024, 2, 20, 3, 7, tzinfo=UTC), datetime(2024, 2, 27, tzinfo=UTC)
    first = backfill(
        new_db, sim.url, "dvol", "--currency", "BTC,ETH", "--since", since.isoformat(), "--until", until.isoformat()
    )
    assert first["status"] == "ok"
    for currency in ("BTC", "ETH"):
        truth = true_dvol(currency, since, until)
        assert len(truth) == (until - since) // timedelta(minutes=1)
        assert stored_dvol(new_db, currency) == truth
    assert first["datasets"]["dvol"]["requests"] >= 2 * len(truth) // 700  # continuation was followed
    second = backfill(
        new_db, sim.url, "dvol", "--currency", "BTC,ETH", "--since", since.isoformat(), "--until", until.isoformat()
    )
    assert second["datasets"]["dvol"]["requests"] == 0 and second["new_tasks"]["dvol"] == 0


def test_dvol_before_the_index_existed_is_fetched_empty_and_covered(sim, new_db):
    summary = backfill(new_db, sim.url, "dvol", "--currency", "BTC", "--since", "2021-03-20", "--until", "2021-03-26")
    assert stored_dvol(new_db, "BTC") == true_dvol(
        "BTC", datetime(2021, 3, 20, tzinfo=UTC), datetime(2021, 3, 26, tzinfo=UTC)
    )
    assert stored_dvol(new_db, "BTC")[0][0] == datetime(2021, 3, 24, tzinfo=UTC)
    assert summary["coverage"]["dvol"]["complete"] == 1
    # `coverage --json` gives numbers as numbers (a script must not parse "100.00" or "0:00:00").
    result = run_cli("coverage", "--dataset", "dvol", "--json", "--dsn", new_db)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["missing_time"] == 0.0 and row["unsettled_time"] == 0.0 and isinstance(row["rows"], int)
    assert all(not isinstance(row[key], str) for key in ("completeness_pct", "expected_rows"))


@pytest.mark.slow
def test_dvol_kill_9_then_resume_gives_the_same_table(new_db):
    # Two months of minutes (88 requests of 1,000 rows): at 50 ms a request over two workers the load lasts at least
    # 2.2 s whatever the machine, so the kill half a second after the first rows lands in its middle.
    since, until = datetime(2023, 11, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", dvol_max_rows=1000, latency_ms=50)) as slow:
        args = [
            "backfill",
            "dvol",
            "--currency",
            "BTC",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
            "--quiet",
            "--workers",
            "2",
            "--dsn",
            new_db,
            "--api-url",
            slow.url,
        ]
        env = {**os.environ, **NO_LIMITER}
        victim = subprocess.Popen(cli_command(*args), env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and victim.poll() is None and not stored_dvol(new_db, "BTC"):
            time.sleep(0.05)
        time.sleep(0.5)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        partial = len(stored_dvol(new_db, "BTC"))
        truth = true_dvol("BTC", since, until)
        assert 0 < partial < len(truth), "the kill should land in the middle of the backfill"
        resumed = subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
    assert stored_dvol(new_db, "BTC") == truth


def true_deliveries(index_name: str) -> list[tuple]:
    total = TRUTH.delivery_prices(index_name[:3].upper(), 0, 1, to_ms(NOW))["records_total"]
    rows = TRUTH.delivery_prices(index_name[:3].upper(), 0, total, to_ms(NOW))["data"]
    return sorted((date.fromisoformat(r["date"]), r["delivery_price"]) for r in rows)


def stored_deliveries(dsn: str, index_name: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT date, delivery_price FROM deribit.delivery_prices WHERE index_name = %s ORDER BY date",
            (index_name,),
        ).fetchall()


@pytest.mark.slow
def test_delivery_prices_are_exact_over_many_pages_and_resume(sim, new_db):
    # Up to a past date first, then everything: the second run fetches only the newer deliveries.
    first = backfill(new_db, sim.url, "delivery", "--index", "btc_usd", "--until", "2022-01-01")
    assert stored_deliveries(new_db, "btc_usd") == [r for r in true_deliveries("btc_usd") if r[0] < date(2022, 1, 1)]
    assert first["datasets"]["delivery"]["requests"] >= 2  # paged by offset (1,000 a page)
    earlier = first["datasets"]["delivery"]["inserted"]
    second = backfill(new_db, sim.url, "delivery", "--index", "btc_usd,eth_usd")
    for index_name in ("btc_usd", "eth_usd"):
        truth = true_deliveries(index_name)
        assert len(truth) > 1000
        assert stored_deliveries(new_db, index_name) == truth
    new_rows = len(true_deliveries("btc_usd")) - earlier + len(true_deliveries("eth_usd"))
    assert second["datasets"]["delivery"]["inserted"] == new_rows
    third = backfill(new_db, sim.url, "delivery", "--index", "btc_usd,eth_usd")
    assert third["datasets"]["delivery"]["inserted"] == 0 and third["datasets"]["delivery"]["revised"] == 0


def test_unknown_index_and_currency_are_refused_in_one_line(sim, new_db):
    bad = run_cli("backfill", "delivery", "--index", "btc_usdd", "--dsn", new_db, "--api-url", sim.url, env=NO_LIMITER)
    assert bad.returncode != 0 and "btc_usd" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("backfill", "dvol", "--currency", "XYZ", "--dsn", new_db, "--api-url", sim.url, env=NO_LIMITER)
    assert bad.returncode != 0 and "XYZ" in bad.stderr and "Traceback" not in bad.stderr
