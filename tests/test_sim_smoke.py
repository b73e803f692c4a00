"""The simulator answers the calls the exchange client and the backfill engine need, through real ccxt."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import run_in_thread

MINUTE = 60_000


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with run_in_thread(sim_config()) as handle:
        yield handle.url


def _client(url: str) -> ccxt.deribit:
    return ccxt.deribit({"urls": {"api": {"rest": url}}, "enableRateLimit": False})


def test_load_markets_and_5000_candles(sim_url: str) -> None:
    ex = _client(sim_url)
    ex.load_markets()
    assert "BTC/USD:BTC" in ex.markets and "ETH/USD:ETH" in ex.markets
    since = SIM_NOW_MS // MINUTE * MINUTE - 4999 * MINUTE
    candles = ex.fetch_ohlcv("BTC/USD:BTC", "1m", since=since, limit=5000)
    assert len(candles) == 5000
    assert [c[0] for c in candles] == list(range(since, SIM_NOW_MS, MINUTE))


def test_funding_index_ticker(sim_url: str) -> None:
    ex = _client(sim_url)
    rows = ex.fetch_funding_rate_history("BTC/USD:BTC", since=SIM_NOW_MS - 10 * 3_600_000, limit=5)
    assert len(rows) == 5 and all(r["timestamp"] % 3_600_000 == 0 for r in rows)
    points = ex.public_get_get_index_chart_data({"index_name": "btc_usd", "range": "1h"})["result"]
    assert len(points) == 60 and points[-1][0] <= SIM_NOW_MS
    ticker = ex.fetch_ticker("BTC/USD:BTC")
    assert ticker["timestamp"] == SIM_NOW_MS and ticker["indexPrice"] > 0
