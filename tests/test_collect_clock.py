"""The collector's estimate of the exchange's clock never runs ahead of the exchange.

The engine judges a window final up to that estimate less the dataset's settling time: an estimate ahead of the
exchange makes minutes (and funding hours) the exchange had not closed yet count as fetched for good, a gap below
the watermark that no plan fetches again.
"""

from __future__ import annotations

import asyncio

from sim_fixtures import sim_config

from deribit_ts.collect.budget import BACKGROUND, FRESH, PriorityLimiter, request_priority
from deribit_ts.collect.clock import ExchangeClock
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.sim import run_in_thread
from deribit_ts.timeutil import to_ms

SPEED = 60.0  # simulated seconds per real second


def test_a_clock_sample_that_waited_for_the_budget_does_not_run_ahead():
    """A sync queued behind fresh requests (a busy budget, as in a catch-up) is sent late: the exchange reads its
    clock then, not when the sync began waiting. Counting from the middle of the wait put the estimate about half
    the wait ahead (at 60x, a minute and more)."""

    async def main() -> float:
        async with DeribitClient(sim.url, limiter=PriorityLimiter(scale=0.25)) as client:  # 5 requests a second
            clock = ExchangeClock(client)
            await clock.start()
            request_priority.set(FRESH)
            queued = [asyncio.create_task(client.get_time()) for _ in range(15)]  # about 3 s of the budget
            await asyncio.sleep(0)
            request_priority.set(BACKGROUND)
            await clock.sync()
            ahead_s = (to_ms(clock.now()) - sim.market.now_ms()) / 1000
            await asyncio.gather(*queued)
            return ahead_s

    with run_in_thread(sim_config(clock_speed=SPEED)) as sim:
        ahead_s = asyncio.run(main())
    assert ahead_s <= 0.2 * SPEED, f"the estimate runs {ahead_s:.0f} simulated seconds ahead of the exchange"
