"""One prioritised rate budget for everything the collector asks the exchange.

The backfill's CreditLimiter serves waiters first come, first served. The collector shares one allowance between
fresh candles (which must land within 90 s of their minute closing), catch-up and snapshots, so here waiters are
served by priority instead: a request's priority is the `request_priority` of the code that makes it (lower
first, like task priorities), FIFO within a priority. Catch-up and snapshots therefore only ever use what fresh
work leaves over. The credit model itself (costs, pools, refill, penalties, shares) is the CreditLimiter's.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools

from deribit_ts.exchange.limiter import CreditLimiter

# Lower runs first. Values below zero keep collector tasks apart from backfill tasks (whose priorities are >= 1).
FRESH = -1000  # the newest closed minute of perpetuals and futures, the index
FUNDING = -900
OPTIONS = -800  # candles of options that traded; the scans of trades (stored, and naming those options)
CATCH_UP = -500  # everything older than the fresh window: gaps after an outage, a new listing's history
SNAPSHOTS = -400
BACKGROUND = 0  # the catalogue, clock syncs and anything else that is not market data

request_priority: contextvars.ContextVar[int] = contextvars.ContextVar(
    "deribit_ts_request_priority", default=BACKGROUND
)


class PriorityLimiter(CreditLimiter):
    """A CreditLimiter whose waiters queue by `request_priority`, then by arrival."""

    _arrivals = itertools.count()

    def _enqueue(self, waiters, granted: asyncio.Future[None]) -> None:
        granted.rank = (request_priority.get(), next(self._arrivals))  # type: ignore[attr-defined]
        _insert_by_rank(waiters, granted)


def _insert_by_rank(waiters, granted) -> None:
    """Insert before the first waiter of a worse rank (the queue is short: a few dozen at most)."""
    rank = granted.rank
    for i, other in enumerate(waiters):
        if getattr(other, "rank", (0, 0)) > rank:
            waiters.insert(i, granted)
            return
    waiters.append(granted)
