"""DeribitClient against the real simulator over real HTTP, with the real ccxt underneath."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from deribit_ts.errors import ExchangeUnavailable
from deribit_ts.exchange import (
    CreditLimiter,
    DeribitClient,
    ExchangeError,
    ExchangeUnavailableError,
    RetriesExhaustedError,
)
from deribit_ts.sim import SimConfig, SimHandle, run_in_thread

NOW = datetime(2024, 3, 1, 12, 0, 30, tzinfo=UTC)
DAY_MS = 86_400_000
CHART_START = int(datetime(2024, 2, 20, tzinfo=UTC).timestamp() * 1000)


def config(**changes) -> SimConfig:
    return SimConfig(**{"seed": 42, "now": NOW, "rate_limit": "off", **changes})


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with run_in_thread(config()) as handle:
        yield handle


def throttled_by_sim(sim: SimHandle) -> int:
    return sim.stats()["errors_by_code"].get("10028", 0)


def chart_windows(count: int) -> list[tuple[int, int]]:
    """`count` distinct one-hour windows of minute candles."""
    return [(CHART_START + i * 3_600_000, CHART_START + (i + 1) * 3_600_000) for i in range(count)]


def truth(sim: SimHandle, start_ms: int, end_ms: int) -> dict:
    return sim.market.truncate(sim.market.candles("BTC-PERPETUAL", start_ms, end_ms, "1", now_ms=sim.market.now_ms()))


def drain(sim: SimHandle) -> None:
    """Empty the simulator's default pool: cheap requests one after another until the first 10028 (HTTP 429)."""
    while True:
        try:
            with urllib.request.urlopen(f"{sim.url}/api/v2/public/get_time", timeout=10) as reply:
                reply.read()
        except urllib.error.HTTPError as refused:
            assert refused.code == 429, refused
            return


async def fetch_charts(client: DeribitClient, windows: list[tuple[int, int]]) -> list[dict]:
    return await asyncio.gather(*(client.get_chart("BTC-PERPETUAL", a, b) for a, b in windows))


def test_market_data_comes_back_as_deribit_sent_it(sim):
    async def main() -> dict:
        async with DeribitClient(sim.url, limiter=CreditLimiter(enabled=False)) as client:
            start, end = chart_windows(1)[0]
            return {
                "chart": await client.get_chart("BTC-PERPETUAL", start, end),
                "no_data": await client.get_chart("BTC-PERPETUAL", 978_307_200_000, 978_310_800_000),  # 2001
                "funding": await client.get_funding_rate_history("BTC-PERPETUAL", start, start + DAY_MS),
                "futures": await client.get_instruments(currency="BTC", kind="future"),
                "expired": await client.get_instruments(currency="BTC", kind="option", expired=True),
                "perpetual": await client.get_instrument("BTC-PERPETUAL"),
                "currencies": await client.get_currencies(),
                "index_names": await client.get_index_price_names(),
                "index_price": await client.get_index_price("btc_usd"),
                "index_chart": await client.get_index_chart_data("btc_usd", "1h"),
                "ticker": await client.call("public/ticker", {"instrument_name": "BTC-PERPETUAL"}),
                "summaries": await client.get_book_summary_by_currency("BTC", kind="future"),
                "time": await client.get_time(),
                "stats": client.stats,
            }

    got = asyncio.run(main())
    now_ms = sim.market.now_ms()
    expected = truth(sim, *chart_windows(1)[0])
    assert got["chart"]["status"] == "ok"
    assert got["chart"]["ticks"] == expected["ticks"] and got["chart"]["close"] == expected["close"]
    assert len(got["chart"]["ticks"]) >= 60
    assert got["no_data"]["status"] == "no_data"
    assert all(got["no_data"][column] == [] for column in ("ticks", "open", "high", "low", "close", "volume", "cost"))
    assert len(got["funding"]) == 24 and all(isinstance(row["timestamp"], int) for row in got["funding"])
    assert {i["instrument_name"] for i in got["futures"]} == {
        i.name for i in sim.market.instruments("BTC", "future", False, now_ms)
    }
    assert "BTC-PERPETUAL" in {i["instrument_name"] for i in got["futures"]}
    assert got["expired"] and all(i["expiration_timestamp"] <= now_ms for i in got["expired"])
    assert got["perpetual"]["instrument_name"] == "BTC-PERPETUAL"
    assert {c["currency"] for c in got["currencies"]} >= {"BTC", "ETH"}
    assert "btc_usd" in got["index_names"]
    assert got["index_price"]["index_price"] > 0
    assert got["index_chart"] and all(len(point) == 2 for point in got["index_chart"])
    assert got["ticker"]["instrument_name"] == "BTC-PERPETUAL"
    assert {s["instrument_name"] for s in got["summaries"]} >= {"BTC-PERPETUAL"}
    assert got["time"] == now_ms
    stats = got["stats"]
    assert (stats.requests, stats.retries, stats.throttled) == (13, 0, 0)
    assert stats.bytes_received > 10_000


def test_bytes_received_count_each_reply_once_however_many_run_at_once(sim):
    """Replies read concurrently are each counted once: a counter read before and after every request counted
    the replies of the requests running meanwhile too (a trades backfill reported 14.6 GB)."""

    async def received(concurrent: int) -> tuple[int, int]:
        async with DeribitClient(sim.url, limiter=CreditLimiter(enabled=False)) as client:
            start, end = chart_windows(1)[0]
            await asyncio.gather(*(client.get_chart("BTC-PERPETUAL", start, end) for _ in range(concurrent)))
            return client.stats.bytes_received, client.stats.requests

    one, _ = asyncio.run(received(1))
    many, requests = asyncio.run(received(24))
    assert requests == 24
    # the same reply each time, but for the envelope's timing fields (a few digits)
    assert 24 * (one - 50) <= many <= 24 * (one + 50)


def test_unknown_instrument_fails_at_once_without_retries(sim):
    async def main() -> tuple[ExchangeError, DeribitClient]:
        async with DeribitClient(sim.url, limiter=CreditLimiter(enabled=False)) as client:
            with pytest.raises(ExchangeError) as caught:
                await client.get_chart("BTC-1JAN19-NOPE", CHART_START, CHART_START + 3_600_000)
            return caught.value, client

    error, client = asyncio.run(main())
    assert (error.code, error.reason, error.param) == (-32602, "instrument not found", "instrument_name")
    assert "instrument not found" in str(error) and "BTC-1JAN19-NOPE" in str(error)
    assert "\n" not in str(error)
    assert (client.stats.requests, client.stats.retries) == (1, 0)


def test_unknown_method_is_not_retried(sim):
    async def main() -> tuple[ExchangeError, DeribitClient]:
        async with DeribitClient(sim.url, limiter=CreditLimiter(enabled=False)) as client:
            with pytest.raises(ExchangeError) as caught:
                await client.call("public/no_such_method", {})
            return caught.value, client

    error, client = asyncio.run(main())
    assert error.code == -32601 and "Method not found" in str(error)
    assert client.stats.requests == 1


def test_injected_faults_are_retried_until_every_call_succeeds():
    """502 pages, 10040, 11051, stalls past the timeout, dropped connections and truncated bodies."""
    windows = chart_windows(60)
    with run_in_thread(config(fault_rate=0.2, stall_seconds=1.0, rate_limit="deribit")) as sim:

        async def main() -> tuple[list[dict], DeribitClient]:
            async with DeribitClient(sim.url, timeout_s=0.5, backoff_base_s=0.02, backoff_cap_s=0.2) as client:
                return await fetch_charts(client, windows), client

        charts, client = asyncio.run(main())
        faults = sim.stats()["faults_by_kind"]
        assert throttled_by_sim(sim) == 0
        expected = [truth(sim, a, b) for a, b in windows]
    assert [c["ticks"] for c in charts] == [e["ticks"] for e in expected]
    assert [c["close"] for c in charts] == [e["close"] for e in expected]
    assert sum(faults.values()) >= 5
    assert client.stats.retries > 0
    assert sum(client.stats.errors.values()) == client.stats.retries
    assert len(client.stats.errors) >= 3, client.stats.errors  # several kinds of failure, all recovered
    assert client.stats.requests == len(windows) + client.stats.retries


def test_burst_and_sustained_rate_stay_inside_deribits_credits():
    """200 concurrent chart requests through a server enforcing Deribit's credits, 100 ms away."""
    windows = chart_windows(200)
    with run_in_thread(config(rate_limit="deribit", latency_ms=100)) as sim:

        async def main() -> tuple[list[float], float, DeribitClient]:
            # A fresh simulator's pool is full, like Deribit's for a new client: allow our (smaller) burst.
            async with DeribitClient(sim.url, limiter=CreditLimiter(initial_fill=1.0)) as client:
                done: list[float] = []
                started = time.monotonic()

                async def one(window: tuple[int, int]) -> None:
                    await client.get_chart("BTC-PERPETUAL", *window)
                    done.append(time.monotonic() - started)

                await asyncio.gather(*(one(w) for w in windows))
                return done, time.monotonic() - started, client

        done, elapsed, client = asyncio.run(main())
        assert throttled_by_sim(sim) == 0
        assert sim.stats()["requests_by_method"]["get_tradingview_chart_data"] == 200
    assert client.stats.throttled == 0 and client.stats.retries == 0
    burst = 90  # Deribit's 100 minus our headroom
    # The burst is not held to 20 req/s (it would take 4.5 s), despite 100 ms latency per request; how fast
    # it goes depends on the CPU time to generate and parse ~60 kB per reply, on two cores shared with the sim.
    assert done[burst - 1] < 2.5
    # Once the backlog is gone: 20 req/s, within timing noise.
    sustained = 80 / (done[-1] - done[-81])
    assert 15 <= sustained <= 22, sustained
    assert elapsed < 10


def test_a_restarted_process_does_not_overdraw_a_pool_its_predecessor_emptied():
    windows = chart_windows(140)
    with run_in_thread(config(rate_limit="deribit")) as sim:

        async def drain_then_restart() -> DeribitClient:
            # The predecessor spends the simulator's whole pool of 100 requests at once...
            async with DeribitClient(sim.url, limiter=CreditLimiter(enabled=False)) as greedy:
                await fetch_charts(greedy, windows[:100])
            # ...and a new process starts right away with the default limiter.
            async with DeribitClient(sim.url, limiter=CreditLimiter()) as client:
                await fetch_charts(client, windows[100:])
                return client

        client = asyncio.run(drain_then_restart())
        assert throttled_by_sim(sim) == 0
        assert sim.stats()["requests"] == 140
    assert client.stats.throttled == 0


def test_throttling_by_the_server_is_retried_and_slows_the_limiter_down():
    """Our limiter thinks it may burst (full start); the server's pool is empty: 10028s, then recovery."""
    windows = chart_windows(130)
    with run_in_thread(config(rate_limit="deribit")) as sim:

        async def main() -> DeribitClient:
            # The pool empty right now (a predecessor's 100 concurrent charts took so long under load that it refilled)
            drain(sim)
            limiter = CreditLimiter(initial_fill=1.0)
            async with DeribitClient(sim.url, limiter=limiter, backoff_base_s=0.02, backoff_cap_s=0.5) as client:
                await fetch_charts(client, windows[100:])
                assert limiter.rate_factor() < 1.0
                return client

        client = asyncio.run(main())
        seen_by_sim = throttled_by_sim(sim) - 1  # (the drain's last request)
    assert seen_by_sim > 0
    assert client.stats.throttled == seen_by_sim == client.stats.errors["10028"]
    assert client.stats.limiter_wait_s > 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_exchange_gives_up_after_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}"

    async def main() -> tuple[ExchangeUnavailableError, DeribitClient]:
        async with DeribitClient(url, max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.05) as client:
            with pytest.raises(ExchangeUnavailableError) as caught:
                await client.get_time()
            return caught.value, client

    started = time.monotonic()
    error, client = asyncio.run(main())
    assert time.monotonic() - started < 3
    assert isinstance(error, ExchangeUnavailable) and error.exit_code == 3
    message = str(error)
    assert message.startswith(f"cannot reach the exchange at {url}: ")
    assert message.endswith("(check --api-url / DERIBIT_TS_API_URL)") and "\n" not in message
    assert (client.stats.requests, client.stats.retries) == (4, 3)
    assert client.stats.errors == {"connection": 4}


def test_a_url_that_is_not_a_deribit_api_fails_at_once(sim):
    async def main() -> tuple[ExchangeUnavailableError, DeribitClient]:
        async with DeribitClient(sim.url + "/not-the-api", limiter=CreditLimiter(enabled=False)) as client:
            with pytest.raises(ExchangeUnavailableError) as caught:
                await client.get_time()
            return caught.value, client

    error, client = asyncio.run(main())
    assert "HTTP 404" in str(error) and "/not-the-api" in str(error)
    assert client.stats.requests == 1


def test_api_url_may_carry_the_api_v2_suffix(sim):
    async def main() -> int:
        async with DeribitClient(sim.url + "/api/v2/", limiter=CreditLimiter(enabled=False)) as client:
            return await client.get_time()

    assert asyncio.run(main()) == sim.market.now_ms()


def test_a_call_the_exchange_keeps_answering_with_a_retryable_code_fails_alone():
    """Retries exhausted on a Deribit code: the exchange is reachable, so only this call fails (its caller's task),
    with the exchange's code and message, not as 'cannot reach the exchange'."""
    with run_in_thread(config(fault_rate=1.0, fault_kinds=("retry_10040",))) as sim:

        async def main() -> RetriesExhaustedError:
            async with DeribitClient(sim.url, max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.02) as client:
                with pytest.raises(RetriesExhaustedError) as caught:
                    await client.get_chart("BTC-PERPETUAL", CHART_START, CHART_START + 3_600_000)
                return caught.value

        error = asyncio.run(main())
    assert isinstance(error, ExchangeError) and not isinstance(error, ExchangeUnavailable)
    assert error.code == 10040 and error.attempts == 3
    message = str(error)
    assert message.startswith("public/get_tradingview_chart_data(instrument_name=BTC-PERPETUAL")
    assert message.endswith("failed: Deribit error 10040 retry (gave up after 3 attempts)") and "\n" not in message
