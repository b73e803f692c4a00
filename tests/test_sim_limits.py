"""Operating conditions: Deribit's credit rate limit, injected faults, latency, and the admin endpoints."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import ccxt
import pytest
from sim_fixtures import sim_config

from deribit_ts.sim import run_in_thread


def _get(url: str, method: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/public/{method}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _until_throttled(send, most: int = 2000) -> list[int]:
    """Statuses of requests sent one after another until the first 429. How many pass beyond the pool depends on
    how fast they go (the pool refills 20 requests' worth a second: on a loaded machine 110 requests can take over
    a second), so the tests send until refused rather than a fixed number."""
    statuses: list[int] = []
    while 429 not in statuses and len(statuses) < most:
        statuses.append(send())
    return statuses


def test_burst_then_too_many_requests() -> None:
    with run_in_thread(sim_config(rate_limit="deribit")) as sim:
        statuses = _until_throttled(lambda: _get(sim.url, "get_time")[0])
        assert statuses[:100] == [200] * 100  # a full pool: 50,000 credits / 500 per request
        assert statuses[-1] == 429
        status, body = _get(sim.url, "get_time")
        while status == 200:
            status, body = _get(sim.url, "get_time")
        assert status == 429 and json.loads(body)["error"] == {"message": "too_many_requests", "code": 10028}
        stats = sim.stats()
        assert stats["errors_by_code"]["10028"] == statuses.count(429) + 1
        time.sleep(0.2)  # 10,000 credits/s refill: 4 requests' worth
        assert _get(sim.url, "get_time")[0] == 200
        sim.reset()
        assert sim.stats()["errors_by_code"] == {}


def test_get_instruments_has_its_own_small_pool() -> None:
    with run_in_thread(sim_config(rate_limit="deribit")) as sim:
        statuses = [_get(sim.url, "get_instruments?currency=ETH&kind=future")[0] for _ in range(53)]
        assert statuses[:50] == [200] * 50 and 429 in statuses[50:]
        assert _get(sim.url, "get_time")[0] == 200  # the default pool is untouched


def test_rate_limit_off_never_throttles() -> None:
    with run_in_thread(sim_config()) as sim:
        assert all(_get(sim.url, "get_time")[0] == 200 for _ in range(150))
        assert "10028" not in sim.stats()["errors_by_code"]


@pytest.mark.parametrize(
    ("kind", "exception"),
    [
        ("http_502", ccxt.ExchangeNotAvailable),
        ("retry_10040", ccxt.ExchangeNotAvailable),
        ("maintenance_11051", ccxt.OnMaintenance),
        ("drop", ccxt.NetworkError),
        ("truncate", ccxt.NetworkError),
    ],
)
def test_faults_reach_ccxt_as_retryable_errors(kind: str, exception: type[Exception]) -> None:
    with run_in_thread(sim_config(fault_rate=1.0, fault_kinds=(kind,))) as sim:
        ex = ccxt.deribit({"urls": {"api": {"rest": sim.url}}, "enableRateLimit": False, "timeout": 5000})
        with pytest.raises(exception):
            ex.public_get_get_time()
        assert sim.stats()["faults_by_kind"] == {kind: 1}


def test_stall_answers_late_but_correctly() -> None:
    with run_in_thread(sim_config(fault_rate=1.0, fault_kinds=("stall",), stall_seconds=0.3)) as sim:
        began = time.monotonic()
        status, body = _get(sim.url, "get_time")
        assert status == 200 and json.loads(body)["result"] > 0
        assert time.monotonic() - began >= 0.3


def test_fault_sequence_is_deterministic_by_seed() -> None:
    def sequence(seed: int) -> list[int]:
        with run_in_thread(sim_config(seed=seed, fault_rate=0.3, fault_kinds=("http_502", "retry_10040"))) as sim:
            return [_get(sim.url, "get_time")[0] for _ in range(40)]

    first = sequence(1)
    assert first == sequence(1) and first != sequence(2)
    assert 200 in first and 502 in first and 400 in first


def test_latency_is_added() -> None:
    with run_in_thread(sim_config(latency_ms=150)) as sim:
        began = time.monotonic()
        _get(sim.url, "get_time")
        assert time.monotonic() - began >= 0.15


def test_admin_endpoints() -> None:
    with run_in_thread(sim_config()) as sim:
        _get(
            sim.url,
            "get_tradingview_chart_data?instrument_name=BTC-PERPETUAL&resolution=1"
            "&start_timestamp=1709200000000&end_timestamp=1709210000000",
        )
        _get(sim.url, "nope")
        with urllib.request.urlopen(f"{sim.url}/_sim/stats") as resp:
            stats = json.loads(resp.read())
        assert stats == sim.stats()
        assert stats["requests_by_method"] == {"get_tradingview_chart_data": 1, "nope": 1}
        assert stats["candles_served"] == 168 and stats["errors_by_code"] == {"-32601": 1}
        with urllib.request.urlopen(urllib.request.Request(f"{sim.url}/_sim/reset", method="POST")) as resp:
            assert json.loads(resp.read()) == {"reset": True}
        assert sim.stats()["requests"] == 0
        with urllib.request.urlopen(f"{sim.url}/_sim/outages") as resp:
            assert json.loads(resp.read()) == [list(w) for w in sim.market.outage_windows()]


def _get_from(url: str, source: str, method: str) -> int:
    """GET from a chosen loopback source address (the whole 127.0.0.0/8 reaches the server on Linux)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", f"/api/v2/public/{method}")
        return conn.getresponse().status
    finally:
        conn.close()


def test_credit_pools_are_per_client_address() -> None:
    with run_in_thread(sim_config(rate_limit="deribit")) as sim:
        first = _until_throttled(lambda: _get_from(sim.url, "127.0.0.1", "get_time"))
        assert first[:100] == [200] * 100 and first[-1] == 429
        # Another address right after 127.0.0.1 ran dry: a full burst of its own (a shared pool would refuse it
        # within a few requests).
        assert [_get_from(sim.url, "127.0.0.2", "get_time") for _ in range(100)] == [200] * 100
        assert sim.stats()["errors_by_code"]["10028"] == first.count(429)
