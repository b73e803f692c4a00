"""The exchange's clock, as the collector schedules by it.

Every schedule of the collector (the minute a candle closes, the hour of a funding row) follows the exchange's
`public/get_time`, not the local clock: the local clock may be off, and a simulator may run its clock faster than
real time (tests and benchmarks run a day in minutes). The clock is sampled every few seconds; between samples it
is extrapolated at the rate measured between samples (1.0 against a real exchange, within measuring noise).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import datetime, timedelta

from deribit_ts.exchange.client import DeribitClient
from deribit_ts.timeutil import from_ms

RESYNC_S = 5.0  # real seconds between samples
WINDOW_S = 60.0  # the rate is measured over samples this far apart at most
_SNAP = 0.02  # a measured rate within 2 % of 1 is the real clock plus network noise


class ExchangeClock:
    def __init__(self, client: DeribitClient):
        self.client = client
        self.samples: deque[tuple[float, int]] = deque()  # (local monotonic seconds, exchange ms)
        self.rate = 1.0  # exchange seconds per real second

    async def sync(self) -> None:
        exchange_ms = await self.client.get_time()
        # The sample is dated when the answer is in: the exchange read its clock before that, however long the
        # request first waited for the rate budget (a sync waits behind market data). Dating it in the middle
        # of the call counted half that wait as exchange time: behind a busy budget at a fast clock the
        # estimate ran minutes ahead, and the engine judged final what the exchange had not closed yet.
        self.samples.append((time.monotonic(), exchange_ms))
        while len(self.samples) > 2 and self.samples[-1][0] - self.samples[1][0] >= WINDOW_S:
            self.samples.popleft()
        (t0, e0), (t1, e1) = self.samples[0], self.samples[-1]
        if t1 - t0 >= 0.5:
            rate = (e1 - e0) / 1000 / (t1 - t0)
            self.rate = 1.0 if abs(rate - 1.0) < _SNAP else max(rate, 0.0)

    async def start(self) -> None:
        """Two samples a second apart: enough to tell a real clock from a fast one."""
        self.samples.clear()
        await self.sync()
        await asyncio.sleep(1.0)
        await self.sync()

    def now(self) -> datetime:
        t, e = self.samples[-1]
        return from_ms(e) + timedelta(seconds=(time.monotonic() - t) * self.rate)

    def due_in(self, when: datetime) -> float:
        """Real seconds until the exchange's clock shows `when` (0 if it already does)."""
        ahead = (when - self.now()).total_seconds()
        return max(0.0, ahead / self.rate) if self.rate > 0 else 1.0

    def stale(self) -> bool:
        return not self.samples or time.monotonic() - self.samples[-1][0] >= RESYNC_S
