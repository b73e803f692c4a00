"""CreditLimiter on a virtual clock: exact grant times, checked against a model of Deribit's own bucket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from deribit_ts.errors import UserError
from deribit_ts.exchange.limiter import (
    DEFAULT_BUCKET,
    GET_INSTRUMENTS_BUCKET,
    PENALTY_COOLDOWN_S,
    BucketSpec,
    CreditLimiter,
)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps straight to the next timer whenever nothing is ready to run.

    Timers fire in the same order and at the same loop.time() as on a real loop, only without waiting, so
    grant times are exact and the tests take milliseconds. (Relies on BaseEventLoop's `_ready`/`_scheduled`,
    stable since Python 3.4; only used for tests that do no I/O.)
    """

    START = 1000.0

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = self.START

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        if not self._ready and self._scheduled:
            self._virtual_now = max(self._virtual_now, self._scheduled[0]._when)
        super()._run_once()


def run_virtual(main: Callable[[], Awaitable[object]]) -> object:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


class ServerBucket:
    """Deribit's side of the bargain: refill, cap at the pool size, reject (10028) when short."""

    def __init__(self, spec: BucketSpec, start_full: bool, start_time: float = 0.0):
        self.spec = spec
        self.level = spec.pool if start_full else 0.0
        self.updated_at = start_time
        self.rejected = 0

    def arrive(self, now: float) -> None:
        self.level = min(self.spec.pool, self.level + (now - self.updated_at) * self.spec.refill_per_s)
        self.updated_at = now
        if self.level + 1e-6 < self.spec.cost:
            self.rejected += 1
        else:
            self.level -= self.spec.cost


async def grant_times(
    limiter: CreditLimiter, count: int, method: str = "get_tradingview_chart_data", latency_s: float = 0.0
) -> list:
    """Start `count` concurrent requests at once, each answered `latency_s` after its grant, as DeribitClient
    reports them; return the time (since the start) at which each was granted."""
    loop = asyncio.get_running_loop()

    async def one() -> float:
        await limiter.acquire(method)
        granted = loop.time()
        await asyncio.sleep(latency_s)
        limiter.request_done(method)
        return granted

    t0 = loop.time()
    times = await asyncio.gather(*(one() for _ in range(count)))
    return [t - t0 for t in times]


def test_full_start_burst_then_exactly_20_per_second():
    limiter = CreditLimiter(initial_fill=1.0)
    times = run_virtual(lambda: grant_times(limiter, 300))
    burst = [t for t in times if t == 0.0]
    assert len(burst) == 90  # Deribit's burst of 100 minus the 10 % headroom
    gaps = [b - a for a, b in zip(times[89:], times[90:], strict=False)]
    assert all(gap == pytest.approx(0.05, abs=1e-9) for gap in gaps)
    assert times[-1] == pytest.approx(210 * 0.05)


def test_default_start_is_empty_and_sustains_20_per_second():
    limiter = CreditLimiter()
    times = run_virtual(lambda: grant_times(limiter, 201))
    assert times[0] == pytest.approx(0.05)  # nothing is assumed about credits we have not seen refill
    assert times[-1] == pytest.approx(201 * 0.05)  # 20 req/s from the first request on


def test_grants_are_first_come_first_served():
    limiter = CreditLimiter()
    order: list[int] = []

    async def main() -> None:
        async def one(i: int) -> None:
            await limiter.acquire("ticker")
            order.append(i)

        await asyncio.gather(*(one(i) for i in range(50)))

    run_virtual(main)
    assert order == list(range(50))


@pytest.mark.parametrize("server_starts_full", [True, False])
def test_bursty_callers_never_overdraw_the_server_pool(server_starts_full):
    """Waves of requests separated by idle gaps of varying length, all checked against Deribit's model."""
    limiter = CreditLimiter()
    server = ServerBucket(DEFAULT_BUCKET, start_full=server_starts_full, start_time=VirtualTimeLoop.START)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        sent = 0
        for wave, (size, idle_s) in enumerate([(150, 0.3), (40, 2.0), (120, 7.0), (500, 0.01), (30, 1.0)]):
            start = loop.time()
            times = await grant_times(limiter, size, method=f"method_{wave}")
            for t in times:
                server.arrive(start + t)
            sent += size
            await asyncio.sleep(idle_s)
        return sent

    sent = run_virtual(main)
    assert sent == 840
    assert server.rejected == 0


@pytest.mark.parametrize("report_replies", [True, False])
def test_a_burst_after_an_idle_spell_survives_slow_connection_setup(report_replies):
    """After idling, both pools are full. The next burst's first wave (32 requests, as many as the client
    keeps in flight) reaches the server only 0.6 s after we grant it (new connections, TLS), and the
    server's pool stays clipped at its ceiling meanwhile. Without replies reported, the refill hold has to
    end by itself."""
    limiter = CreditLimiter()
    server = ServerBucket(DEFAULT_BUCKET, start_full=True, start_time=VirtualTimeLoop.START)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        in_flight = asyncio.Semaphore(32)
        arrivals: list[float] = []
        connected = False

        async def one() -> None:
            async with in_flight:
                await limiter.acquire("ticker")
                travel_s = 0.05 if connected else 0.6
                arrivals.append(loop.time() + travel_s)
                await asyncio.sleep(travel_s + 0.05)
                if report_replies:
                    limiter.request_done("ticker")

        await asyncio.gather(*(one() for _ in range(60)))  # warm-up on new connections
        connected = True
        await asyncio.sleep(30)  # idle: both pools refill to their ceilings, connections are dropped
        connected = False
        first_wave = [asyncio.ensure_future(one()) for _ in range(32)]
        await asyncio.sleep(0)
        connected = True  # requests sent after the first wave reuse its connections
        await asyncio.gather(*first_wave, *(one() for _ in range(170)))
        return arrivals

    for t in sorted(run_virtual(main)):
        server.arrive(t)
    assert server.rejected == 0


def test_get_instruments_has_its_own_bucket_at_1_per_second():
    limiter = CreditLimiter()
    server_default = ServerBucket(DEFAULT_BUCKET, start_full=False)
    server_instruments = ServerBucket(GET_INSTRUMENTS_BUCKET, start_full=False)

    async def main() -> tuple[list, list]:
        instruments, charts = await asyncio.gather(
            grant_times(limiter, 6, method="public/get_instruments"),
            grant_times(limiter, 100, method="public/get_tradingview_chart_data"),
        )
        return instruments, charts

    instruments, charts = run_virtual(main)
    assert instruments == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # The chart requests are not held up by the slow bucket: 100 of them at 20/s take 5 s.
    assert charts[-1] == pytest.approx(5.0)
    for t in instruments:
        server_instruments.arrive(t)
    for t in charts:
        server_default.arrive(t)
    assert server_instruments.rejected == 0 and server_default.rejected == 0


def test_get_instruments_burst_is_45_when_full():
    limiter = CreditLimiter(initial_fill=1.0)
    times = run_virtual(lambda: grant_times(limiter, 50, method="get_instruments"))
    assert sum(1 for t in times if t == 0.0) == 45
    assert times[-1] == pytest.approx(5.0)


def test_half_scale_halves_rate_and_burst():
    limiter = CreditLimiter(0.5, initial_fill=1.0)
    times = run_virtual(lambda: grant_times(limiter, 100))
    assert sum(1 for t in times if t == 0.0) == 45
    assert times[-1] == pytest.approx(55 * 0.1)  # 10 req/s after the burst


def test_penalty_drains_the_pool_halves_the_rate_and_recovers():
    limiter = CreditLimiter(initial_fill=1.0)

    async def main() -> dict:
        loop = asyncio.get_running_loop()
        await limiter.acquire("ticker")  # pool still nearly full
        limiter.request_done("ticker")
        limiter.penalize("ticker")
        limiter.penalize("ticker")  # a second 10028 from the same in-flight wave does not halve again
        factor_after = limiter.rate_factor()
        t0 = loop.time()
        await limiter.acquire("ticker")
        first_wait = loop.time() - t0
        await asyncio.sleep(PENALTY_COOLDOWN_S + 60)
        return {"factor_after": factor_after, "first_wait": first_wait, "recovered": limiter.rate_factor()}

    result = run_virtual(main)
    assert result["factor_after"] == pytest.approx(0.5)
    assert result["first_wait"] == pytest.approx(0.1)  # empty pool, refilling at 10 req/s
    assert result["recovered"] == 1.0
    assert limiter.penalties == 2


def test_penalty_wakes_queued_waiters_later_not_earlier():
    limiter = CreditLimiter()

    async def main() -> list:
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(grant_times(limiter, 3))
        await asyncio.sleep(0.06)  # the first was granted at 0.05, two are queued
        limiter.penalize()
        times = await waiting
        return [times[0], times[1] - 0.06, loop.time()]

    first, second_after_penalty, _ = run_virtual(main)
    assert first == pytest.approx(0.05)
    assert second_after_penalty == pytest.approx(0.1)  # 500 credits at half speed from an empty pool


def test_cancelled_waiter_gives_its_place_away():
    limiter = CreditLimiter()

    async def main() -> list:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        cancelled = asyncio.ensure_future(limiter.acquire("ticker"))
        kept = asyncio.ensure_future(limiter.acquire("ticker"))
        await asyncio.sleep(0)
        cancelled.cancel()
        await kept
        return [loop.time() - t0]

    (kept_at,) = run_virtual(main)
    assert kept_at == pytest.approx(0.05)  # took the first slot, the cancelled one paid nothing


def test_off_mode_never_waits():
    limiter = CreditLimiter(enabled=False)
    times = run_virtual(lambda: grant_times(limiter, 1000, method="get_instruments"))
    assert max(times) == 0.0
    assert limiter.describe() == "rate limit off"


def test_wait_time_is_accounted():
    limiter = CreditLimiter()
    run_virtual(lambda: grant_times(limiter, 4))
    assert limiter.waits == 4
    assert limiter.total_wait_s == pytest.approx(0.05 + 0.10 + 0.15 + 0.20)


@pytest.mark.parametrize(
    ("value", "enabled", "scale"),
    [("", True, 1.0), ("off", False, 1.0), ("0.5", True, 0.5), ("2", True, 2.0), ("OFF", False, 1.0)],
)
def test_from_env(value, enabled, scale):
    limiter = CreditLimiter.from_env(value)
    assert (limiter.enabled, limiter.scale) == (enabled, scale)


@pytest.mark.parametrize("value", ["-1", "fast", "nan", "inf"])
def test_from_env_rejects_nonsense_with_a_user_error(value):
    with pytest.raises(UserError, match="DERIBIT_TS_RATE_LIMIT_SCALE"):
        CreditLimiter.from_env(value)


def test_from_env_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DERIBIT_TS_RATE_LIMIT_SCALE", "0.25")
    assert CreditLimiter.from_env().scale == 0.25


def test_set_share_keeps_the_credits_in_hand_and_changes_the_rate_at_once():
    limiter = CreditLimiter(initial_fill=1.0)  # 90 requests in hand

    async def main() -> list[float]:
        await grant_times(limiter, 10)  # 80 left
        limiter.set_share(0.5)  # the pool is 45 requests now: 45 in hand, then 10 req/s
        return await grant_times(limiter, 100)

    times = run_virtual(main)
    assert times[:45] == [0.0] * 45 and times[45] > 0
    gaps = [b - a for a, b in zip(times[45:], times[46:], strict=False)]
    assert all(gap == pytest.approx(0.1, abs=1e-9) for gap in gaps)
    assert limiter.describe() == "rate limit 10 req/s (scale 1, share 0.5, burst 45)"


def test_set_share_retimes_queued_waiters():
    limiter = CreditLimiter()

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, limiter.set_share, 0.25)  # 20 -> 5 req/s while 40 requests wait
        return await grant_times(limiter, 40)

    times = run_virtual(main)
    assert times[19] == pytest.approx(1.0)  # 20 in the first second
    assert times[-1] == pytest.approx(1.0 + 20 * 0.2)  # the other 20 at 5 req/s


@pytest.mark.parametrize("joiner_pauses", [True, False])
def test_two_processes_splitting_one_ip_never_overdraw_it(joiner_pauses):
    """Process A runs flat out; B joins at t=10 with half the allowance; A sees B only at its next poll, 1.9 s
    later, and halves its share then. B's pause covers that delay: the server, whose pool A had drained, never
    rejects a request. Without the pause, the two together overdraw it."""
    a, b = CreditLimiter(), CreditLimiter()
    server = ServerBucket(DEFAULT_BUCKET, start_full=False, start_time=VirtualTimeLoop.START)
    poll_s = 2.0

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        arrivals: list[float] = []

        async def flat_out(limiter: CreditLimiter, start_at: float) -> None:
            await asyncio.sleep(start_at)
            while loop.time() < end:
                await limiter.acquire("get_tradingview_chart_data")
                arrivals.append(loop.time())
                limiter.request_done("get_tradingview_chart_data")

        def b_joins() -> None:
            b.set_share(0.5, pause_s=poll_s if joiner_pauses else 0.0)

        loop.call_later(10.0, b_joins)
        loop.call_later(11.9, a.set_share, 0.5)
        await asyncio.gather(flat_out(a, 0.0), flat_out(b, 10.0))
        return sorted(arrivals)

    arrivals = run_virtual(main)
    for t in arrivals:
        server.arrive(t)
    if joiner_pauses:
        assert server.rejected == 0
        late = [t for t in arrivals if t >= VirtualTimeLoop.START + 14]
        assert len(late) == pytest.approx(16 * 20, abs=3)  # together they still use the whole allowance
    else:
        assert server.rejected > 0
