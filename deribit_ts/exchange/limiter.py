"""Client-side model of Deribit's credit-based rate limit (docs/deribit.md, Rate limits).

Deribit keeps a leaky bucket of credits; every request costs credits and a request that finds too few credits
is answered with 10028 ``too_many_requests`` (and the session may be dropped). We keep our own copy of that
bucket and make each request wait until our copy has the credits, so the server's copy never runs dry.

Two buckets matter for public market data:

* default (every public method): cost 500, pool 50,000, refill 10,000/s  -> 20 req/s sustained, burst 100;
* ``public/get_instruments``: cost 10,000, pool 500,000, refill 10,000/s -> 1 req/s sustained, burst 50.

Waiters are served strictly first come, first served. Nobody polls: a single timer per bucket fires exactly
when the request at the head of the queue can be paid for.

The caller reports every finished request with :meth:`CreditLimiter.request_done` (DeribitClient does). That
matters after an idle spell: the server's pool is full and stays clipped at its ceiling until the first
request of the next burst *arrives*, while ours starts draining when we *grant* it. Every millisecond between
the two (new connections, TLS handshakes, latency) is refill we would count and the server would not: with a
few hundred ms of connection set-up, the whole headroom. So a grant made from a (nearly) full pool holds our
refill until a reply proves the server has started counting too.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import deque
from dataclasses import dataclass

from deribit_ts.errors import UserError

RATE_LIMIT_SCALE_ENV = "DERIBIT_TS_RATE_LIMIT_SCALE"
MIN_RATE_LIMIT_SCALE = 0.01  # 0.2 requests/s: slower than this, a backfill of any size never ends

# Rounding slack when comparing credit levels: without it, a timer that fires a few nanoseconds early would
# reschedule itself for a delay shorter than the clock's resolution, over and over.
_EPSILON_CREDITS = 1e-6


@dataclass(frozen=True)
class BucketSpec:
    """One of Deribit's credit buckets, in Deribit's own units."""

    cost: float
    pool: float
    refill_per_s: float


DEFAULT_BUCKET = BucketSpec(cost=500, pool=50_000, refill_per_s=10_000)
GET_INSTRUMENTS_BUCKET = BucketSpec(cost=10_000, pool=500_000, refill_per_s=10_000)

# Methods with a custom limit; every other public method draws from the default bucket.
_CUSTOM_BUCKETS = {"get_instruments": GET_INSTRUMENTS_BUCKET}

# Our pool is this fraction smaller than Deribit's. Requests reach the server a little later than we grant
# them, and unevenly (network jitter, connection set-up). While the server's pool sits at its ceiling it
# throws away refill, so a delayed group of requests can arrive closer together than we granted them. The
# margin absorbs up to 10 % of a pool's worth of such bunching; it only trims the initial burst (100 -> 90)
# and costs nothing in sustained throughput.
DEFAULT_HEADROOM = 0.10

# Back-off after a 10028 the model did not predict (someone else on the same IP, a smaller server pool):
# halve the refill rate, recover linearly to full speed, and don't halve again for responses that were
# already in flight when the first 10028 arrived.
PENALTY_FACTOR = 0.5
MIN_RATE_FACTOR = 1 / 16
RECOVERY_PER_S = 0.02  # rate factor regained per second: from 0.5 back to 1.0 in 25 s
PENALTY_COOLDOWN_S = 1.0

# A refill hold ends at the first reply, or after this long if no reply is reported (a caller that never
# calls request_done, a request stuck in a dead connection) so that a forgotten hold cannot stall everybody.
MAX_HOLD_S = 2.0


def method_key(method: str) -> str:
    """``public/get_instruments`` and ``get_instruments`` both name the same bucket."""
    return method.rsplit("/", 1)[-1]


class _Bucket:
    def __init__(self, spec: BucketSpec, scale: float, headroom: float, initial_fill: float):
        self.spec = spec
        self.headroom = headroom
        self.cost = spec.cost
        self.level = 0.0
        self.resize(scale)
        self.level = self.capacity * initial_fill
        self.updated_at: float | None = None
        self.paused_until = -math.inf  # no refill before this time (set_share's pause)
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        # Penalty state: the rate factor was `factor_at_penalty` at `penalized_at`, then recovers linearly.
        self.factor_at_penalty = 1.0
        self.penalized_at: float | None = None
        # Refill hold (module docstring): no credits accrue while `held_since` is set.
        self.held_since: float | None = None

    def rate_factor(self, now: float) -> float:
        if self.penalized_at is None:
            return 1.0
        return min(1.0, self.factor_at_penalty + RECOVERY_PER_S * (now - self.penalized_at))

    def resize(self, scale: float) -> None:
        """Pool and refill for `scale` of Deribit's bucket; the credits already in hand are kept (up to the new
        pool), so a smaller share neither forgets what was spent nor, later, invents credits."""
        self.capacity = max(self.spec.cost, self.spec.pool * scale * (1.0 - self.headroom))
        self.refill_per_s = self.spec.refill_per_s * scale
        self.level = min(self.level, self.capacity)

    def refill(self, now: float) -> None:
        if self.updated_at is None:
            self.updated_at = now
            return
        if self.paused_until > self.updated_at:
            self.updated_at = min(now, self.paused_until)  # the paused span refills nothing
        if self.held_since is not None:
            if now - self.held_since < MAX_HOLD_S:
                self.updated_at = now
                return
            self.updated_at = max(self.updated_at, self.held_since + MAX_HOLD_S)
            self.held_since = None
        elapsed = max(0.0, now - self.updated_at)
        # The factor only grows between penalties, so using its value at the start of the interval
        # under-counts the refill slightly: safe, and consistent with how the next wake-up is computed.
        rate = self.refill_per_s * self.rate_factor(self.updated_at)
        self.level = min(self.capacity, self.level + elapsed * rate)
        self.updated_at = now

    def can_pay(self) -> bool:
        return self.level + _EPSILON_CREDITS >= self.cost

    def take(self, now: float) -> None:
        """Pay for one request (the caller checked can_pay)."""
        if self.level + _EPSILON_CREDITS >= self.capacity - self.cost and self.held_since is None:
            self.held_since = now
        self.level -= self.cost

    def release(self, now: float) -> None:
        """A reply came back: the server is counting, our refill may run again (from now on)."""
        if self.held_since is not None:
            self.refill(now)
            self.held_since = None
            self.updated_at = now

    def seconds_until_payable(self, now: float) -> float:
        until_release = 0.0 if self.held_since is None else max(0.0, self.held_since + MAX_HOLD_S - now)
        until_release = max(until_release, self.paused_until - now)
        return until_release + (self.cost - self.level) / (self.refill_per_s * self.rate_factor(now))


class CreditLimiter:
    """Waits until Deribit's credit model allows the next request.

    ``scale`` multiplies both the refill rate and the pool (0.5 = half of Deribit's allowance, for users who
    share an IP or sub-account); ``enabled=False`` makes :meth:`acquire` return at once (a simulator with
    rate limiting switched off). One instance per process, used from one event loop.
    """

    def __init__(
        self,
        scale: float = 1.0,
        *,
        enabled: bool = True,
        headroom: float = DEFAULT_HEADROOM,
        initial_fill: float = 0.0,
    ):
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"rate limit scale must be a positive number, got {scale!r}")
        if not 0.0 <= headroom < 1.0 or not 0.0 <= initial_fill <= 1.0:
            raise ValueError("headroom must be in [0, 1) and initial_fill in [0, 1]")
        self.scale = scale
        self.share = 1.0  # the part of `scale` this process may use (set_share: processes sharing one IP)
        self.enabled = enabled
        # The pool starts EMPTY by default. Deribit's pool starts full for a fresh client, but we cannot know
        # whether a previous process (a restarted backfill, a parallel command) drained it a moment ago; a
        # full start would then fire a burst of up to 100 requests into an empty server pool and collect
        # 10028s. Starting empty costs at most one pool's refill time (5 s) of burst, once per process, and
        # nothing in sustained throughput.
        self._buckets = {
            key: _Bucket(spec, scale, headroom, initial_fill)
            for key, spec in (("default", DEFAULT_BUCKET), *_CUSTOM_BUCKETS.items())
        }
        self.total_wait_s = 0.0
        self.waits = 0
        self.penalties = 0

    @classmethod
    def from_env(cls, value: str | None = None) -> CreditLimiter:
        """Build from ``DERIBIT_TS_RATE_LIMIT_SCALE``: a positive number (default 1), or ``off``."""
        raw = (value if value is not None else os.environ.get(RATE_LIMIT_SCALE_ENV, "")).strip().lower()
        if raw in ("", "1", "1.0", "on", "deribit"):
            return cls()
        if raw in ("off", "none", "0", "false", "no"):
            return cls(enabled=False)
        try:
            scale = float(raw)
        except ValueError:
            scale = math.nan
        if not (scale > 0 and math.isfinite(scale)):
            raise UserError(
                f"{RATE_LIMIT_SCALE_ENV}={raw!r} is not valid: use a positive number such as 0.5 "
                "(half of Deribit's allowance) or 'off'"
            )
        if scale < MIN_RATE_LIMIT_SCALE:
            # Smaller scales are no limit but a stall: at 1e-300 the first request would wait for ages.
            raise UserError(
                f"{RATE_LIMIT_SCALE_ENV}={raw!r} is below {MIN_RATE_LIMIT_SCALE:g} (one request every "
                f"{DEFAULT_BUCKET.cost / (DEFAULT_BUCKET.refill_per_s * MIN_RATE_LIMIT_SCALE):g} s), so a run "
                "would hang: use a scale from 0.01 (e.g. 0.5 = half of Deribit's allowance) or 'off'"
            )
        return cls(scale)

    def _bucket(self, method: str) -> _Bucket:
        return self._buckets.get(method_key(method), self._buckets["default"])

    async def acquire(self, method: str) -> float:
        """Wait until a request to ``method`` may be sent; returns the seconds waited."""
        if not self.enabled:
            return 0.0
        bucket = self._bucket(method)
        loop = asyncio.get_running_loop()
        started = loop.time()
        bucket.refill(started)
        if not bucket.waiters and bucket.can_pay():
            bucket.take(started)
            return 0.0
        granted: asyncio.Future[None] = loop.create_future()
        self._enqueue(bucket.waiters, granted)
        self._schedule(bucket)
        try:
            await granted
        except asyncio.CancelledError:
            self._abandon(bucket, granted)
            raise
        waited = loop.time() - started
        self.total_wait_s += waited
        self.waits += 1
        return waited

    def _enqueue(self, waiters: deque[asyncio.Future[None]], granted: asyncio.Future[None]) -> None:
        """Queue a waiter: first come, first served (a subclass may order the queue otherwise)."""
        waiters.append(granted)

    def _abandon(self, bucket: _Bucket, granted: asyncio.Future[None]) -> None:
        """A waiter was cancelled: give its credits back if it had them, else leave the queue."""
        if granted.done() and not granted.cancelled():
            bucket.level = min(bucket.capacity, bucket.level + bucket.cost)
        elif granted in bucket.waiters:
            bucket.waiters.remove(granted)
        self._schedule(bucket)

    def _schedule(self, bucket: _Bucket) -> None:
        """Serve the queue head while credits last, then arm one timer for when the next can be paid."""
        if bucket.timer is not None:
            bucket.timer.cancel()
            bucket.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        bucket.refill(now)
        while bucket.waiters:
            head = bucket.waiters[0]
            if head.done():  # cancelled while queued
                bucket.waiters.popleft()
                continue
            if not bucket.can_pay():
                break
            bucket.waiters.popleft()
            bucket.take(now)
            head.set_result(None)
        if bucket.waiters:
            bucket.timer = loop.call_later(bucket.seconds_until_payable(now), self._on_timer, bucket)

    def _on_timer(self, bucket: _Bucket) -> None:
        bucket.timer = None
        self._schedule(bucket)

    def request_done(self, method: str) -> None:
        """Report that a request granted by :meth:`acquire` got a reply (or failed): ends a refill hold."""
        if not self.enabled:
            return
        bucket = self._bucket(method)
        if bucket.held_since is not None:
            bucket.release(asyncio.get_running_loop().time())
            if bucket.waiters:
                self._schedule(bucket)

    def penalize(self, method: str = "default") -> None:
        """The server said 10028 although our model allowed the request: its pool is smaller than we think.

        Drain our pool (the server's is empty now) and slow the refill down, recovering gradually.
        """
        if not self.enabled:
            return
        bucket = self._bucket(method)
        now = asyncio.get_running_loop().time()
        bucket.refill(now)
        bucket.level = 0.0
        self.penalties += 1
        if bucket.penalized_at is None or now - bucket.penalized_at >= PENALTY_COOLDOWN_S:
            bucket.factor_at_penalty = max(MIN_RATE_FACTOR, bucket.rate_factor(now) * PENALTY_FACTOR)
            bucket.penalized_at = now
        if bucket.waiters:
            self._schedule(bucket)

    def set_share(self, share: float, *, pause_s: float = 0.0) -> None:
        """Use `share` (0 < share <= 1) of the configured allowance from now on, e.g. 1/n when n processes on
        this host split Deribit's per-IP limit. Credits accrued so far are kept (clipped to the new pool) and
        later refill runs at the new rate; waiters are re-timed. `pause_s` refills nothing for that long: a
        process joining others waits until they have seen it and shrunk their own share.
        """
        if not (0.0 < share <= 1.0):
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        if not self.enabled:
            return
        now = asyncio.get_running_loop().time()
        for bucket in self._buckets.values():
            bucket.refill(now)  # what accrued so far accrued at the old rate
            bucket.resize(self.scale * share)
            if pause_s > 0:
                bucket.paused_until = max(bucket.paused_until, now + pause_s)
            if bucket.waiters:
                self._schedule(bucket)
        self.share = share

    def rate_factor(self, method: str = "default") -> float:
        """Current refill speed relative to the configured one (1.0 unless recently penalized)."""
        return self._bucket(method).rate_factor(asyncio.get_running_loop().time())

    def describe(self) -> str:
        if not self.enabled:
            return "rate limit off"
        default = self._buckets["default"]
        share = f", share {self.share:g}" if self.share != 1.0 else ""
        return (
            f"rate limit {default.refill_per_s / default.cost:g} req/s "
            f"(scale {self.scale:g}{share}, burst {int(default.capacity // default.cost)})"
        )
