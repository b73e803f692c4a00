"""The real ccxt client (sync and async_support) against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import ccxt
import ccxt.async_support as accxt
import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import SimHandle, run_in_thread

MINUTE = 60_000


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with run_in_thread(sim_config()) as handle:
        yield handle


@pytest.fixture(scope="module")
def ex(sim: SimHandle) -> ccxt.deribit:
    client = ccxt.deribit({"urls": {"api": {"rest": sim.url}}, "enableRateLimit": False})
    client.load_markets()
    return client


def test_load_markets_lists_every_kind(ex: ccxt.deribit) -> None:
    kinds = {m["type"] for m in ex.markets.values()}
    assert kinds == {"swap", "future", "option"}
    assert ex.markets["BTC/USD:BTC"]["inverse"] is True


def test_fetch_ohlcv_matches_market_truth(ex: ccxt.deribit, sim: SimHandle) -> None:
    since = SIM_NOW_MS // MINUTE * MINUTE - 999 * MINUTE
    got = ex.fetch_ohlcv("BTC/USD:BTC", "1m", since=since, limit=1000)
    truth = sim.market.candles("BTC-PERPETUAL", since, since + 999 * MINUTE)
    assert [c[0] for c in got] == truth["ticks"]
    assert [c[4] for c in got] == truth["close"]
    assert [c[5] for c in got] == truth["volume"]


def test_funding_ticker_greeks_trades_book(ex: ccxt.deribit) -> None:
    funding = ex.fetch_funding_rate_history("BTC/USD:BTC", since=SIM_NOW_MS - 48 * 3_600_000)
    assert len(funding) == 48
    ticker = ex.fetch_ticker("BTC/USD:BTC")
    assert ticker["last"] and ticker["bid"] < ticker["ask"]
    option = next(s for s, m in ex.markets.items() if m["option"] and m["base"] == "BTC")
    greeks = ex.fetch_greeks(option)
    assert -1 <= greeks["delta"] <= 1 and greeks["markImpliedVolatility"] > 0
    trades = ex.fetch_trades("BTC/USD:BTC", since=SIM_NOW_MS - 10 * MINUTE, limit=50)
    assert trades and all(SIM_NOW_MS - 10 * MINUTE <= t["timestamp"] <= SIM_NOW_MS for t in trades)
    book = ex.fetch_order_book("BTC/USD:BTC", limit=5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]


def test_raw_expired_instruments(ex: ccxt.deribit) -> None:
    expired = ex.public_get_get_instruments({"currency": "BTC", "expired": True})["result"]
    assert expired and all(not i["is_active"] and i["expiration_timestamp"] <= SIM_NOW_MS for i in expired)
    active = ex.public_get_get_instruments({"currency": "BTC"})["result"]
    assert not {i["instrument_name"] for i in expired} & {i["instrument_name"] for i in active}


def test_errors_map_to_ccxt_exceptions(ex: ccxt.deribit) -> None:
    with pytest.raises(ccxt.BadRequest):
        ex.public_get_ticker({"instrument_name": "BTC-NOPE"})


def test_async_support(sim: SimHandle) -> None:
    async def run() -> tuple[int, int]:
        client = accxt.deribit({"urls": {"api": {"rest": sim.url}}, "enableRateLimit": False})
        try:
            await client.load_markets()
            since = SIM_NOW_MS // MINUTE * MINUTE - 4999 * MINUTE
            candles, funding = await asyncio.gather(
                client.fetch_ohlcv("ETH/USD:ETH", "1m", since=since, limit=5000),
                client.fetch_funding_rate_history("ETH/USD:ETH", since=SIM_NOW_MS - 24 * 3_600_000),
            )
            return len(candles), len(funding)
        finally:
            await client.close()

    assert asyncio.run(run()) == (5000, 24)
