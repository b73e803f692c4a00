"""Names a user types into `backfill`: currencies, index names, funding instruments. Wrong ones are refused in one
line before anything is planned; right ones in any case work."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from helpers import run_cli

from deribit_ts.sim import SimConfig, run_in_thread

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}


@pytest.fixture(scope="module")
def sim():
    with run_in_thread(SimConfig(now=NOW, rate_limit="off")) as handle:
        yield handle


def backfill(dsn: str, url: str, *args: str):
    return run_cli("backfill", *args, "--dsn", dsn, "--api-url", url, env=NO_LIMITER)


def nothing_planned(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM deribit_ts.tasks) + (SELECT count(*) FROM "
            "deribit_ts.targets) + (SELECT count(*) FROM deribit_ts.runs)"
        ).fetchone() == (0,)


def assert_refused(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_index_is_refused_with_the_nearest_names(sim, new_db):
    assert_refused(backfill(new_db, sim.url, "index", "--index", "btc_usdd"), "unknown index 'btc_usdd'", "btc_usd")
    assert_refused(backfill(new_db, sim.url, "index", "--index", "nope"), "the exchange lists btc_usd, eth_usd")
    assert nothing_planned(new_db)


def test_unknown_currency_is_refused_with_the_exchanges_list(sim, new_db):
    assert_refused(backfill(new_db, sim.url, "instruments", "--currency", "XRP"), "unknown currency XRP", "BTC")
    assert nothing_planned(new_db)


def test_funding_of_a_dated_future_is_refused(sim, new_db):
    assert_refused(
        backfill(new_db, sim.url, "funding", "--instrument", "BTC-29MAR24", "--quiet"),
        "BTC-29MAR24: not a perpetual",
        "funding rates exist only for perpetuals",
    )
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks").fetchone() == (0,)


def test_names_in_any_case_and_currency_all(sim, new_db):
    result = backfill(new_db, sim.url, "instruments", "--currency", "btc", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    result = backfill(new_db, sim.url, "instruments", "--json", "--quiet")  # default: every listed currency
    assert result.returncode == 0, result.stderr
    with psycopg.connect(new_db) as conn:
        currencies = {r[0] for r in conn.execute("SELECT DISTINCT base_currency FROM deribit.instruments")}
    assert currencies == {"BTC", "ETH"}  # the simulator lists these two
    result = backfill(new_db, sim.url, "index", "--index", "BTC_USD", "--since", "2024-02-28", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["datasets"]["index"]["rows_fetched"] > 0


def test_unknown_instrument_is_refused_before_a_run_is_logged(sim, new_db):
    result = backfill(new_db, sim.url, "candles", "--instrument", "BTC-PERPETUALL", "--quiet")
    assert_refused(result, "unknown instrument 'BTC-PERPETUALL'")
    assert nothing_planned(new_db)
    result = backfill(new_db, sim.url, "funding", "--instrument", "BTC-29MAR24", "--quiet")
    assert_refused(result, "BTC-29MAR24: not a perpetual")
    assert_refused(
        backfill(new_db, sim.url, "candles", "--instrument", "A" * 100_000),
        "--instrument 'AAAA",
        "(100,000 characters) is not a valid name",
    )
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.runs").fetchone() == (0,)
