"""The underlying's paths: index level (daily walk + minute bridge), perpetual premium, futures basis, implied vol.

The index is built in two layers so any minute can be produced without walking from 2018: a coarse walk of daily
levels (computed once per underlying, extended on demand) and, per UTC day, a Brownian bridge of 1440 minutes
pinned to the two daily levels. Volatility comes in weekly regimes; rare jumps land inside a day's bridge.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from deribit_ts.sim.seeds import gaussians, text_key, unit, units

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
YEAR_MS = 365 * DAY_MS
MINUTES = 1440
_REGIME_VOLS = (0.35, 0.55, 0.8, 1.2)  # annualised; picked per ISO week
_REGIME_WEIGHTS = (0.25, 0.4, 0.25, 0.1)
_JUMP_PROBABILITY = 0.03  # per day
_MEAN_REVERSION = 0.002  # per day, towards the long-run trend, so paths stay believable for a decade
_STEPS = np.arange(MINUTES + 1, dtype=np.float64)  # minute boundaries of a day
_MINUTE_OF_HOUR = np.arange(60, dtype=np.float64)
_WALK_CHUNK = 256  # days of the daily walk computed at once, ahead of need
_KNOT_HOURS = np.arange(25, dtype=np.int64)  # the hourly knots of a day, 00:00 ... next 00:00


@dataclass(frozen=True)
class UnderlyingSpec:
    currency: str
    index_name: str
    first_price: float  # index level on 2018-08-14
    trend_per_year: float  # drift of the long-run trend (log)
    vol_scale: float


UNDERLYINGS = {
    "BTC": UnderlyingSpec("BTC", "btc_usd", 6300.0, 0.35, 1.0),
    "ETH": UnderlyingSpec("ETH", "eth_usd", 280.0, 0.38, 1.2),
}
_ANCHOR_DAY = 17757  # 2018-08-14, the day the trend is anchored at (independent of the configured start)


class UnderlyingPaths:
    """Index, premium, basis and implied-vol paths of one currency for one seed."""

    def __init__(self, seed: int, currency: str, cache_days: int = 512) -> None:
        self.spec = UNDERLYINGS[currency]
        self.seed = seed
        self._key = text_key(currency)
        self._levels = array("d", [math.log(self.spec.first_price)])  # log level at 00:00 of _ANCHOR_DAY + i
        self._minutes: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_days = cache_days
        self._lock = threading.Lock()

    # ---- regimes and daily randomness -------------------------------------------------------------------------
    def regime_vol(self, day: int) -> float:
        u = unit(self.seed, self._key, 1, (day + 3) // 7)
        acc = 0.0
        for vol, weight in zip(_REGIME_VOLS, _REGIME_WEIGHTS, strict=True):
            acc += weight
            if u < acc:
                return vol * self.spec.vol_scale
        return _REGIME_VOLS[-1] * self.spec.vol_scale

    def _day_shock(self, day: int) -> tuple[float, float, int]:
        """(gaussian of the day, jump size in log terms, minute of the jump)."""
        u_jump = unit(self.seed, self._key, 2, day)
        z = _gauss_from(unit(self.seed, self._key, 3, day), unit(self.seed, self._key, 4, day))
        if u_jump < _JUMP_PROBABILITY:
            sign = 1 if unit(self.seed, self._key, 6, day) < 0.45 else -1
            size = (0.04 + 0.1 * unit(self.seed, self._key, 5, day)) * sign
            return z, size, int(unit(self.seed, self._key, 7, day) * MINUTES)
        return z, 0.0, 0

    # ---- index ------------------------------------------------------------------------------------------------
    def _log_level(self, day: int) -> float:
        i = day - _ANCHOR_DAY
        if i < 0:
            return self._levels[0]
        if len(self._levels) <= i:
            with self._lock:
                if len(self._levels) <= i:
                    self._extend_walk(i + _WALK_CHUNK)
        return self._levels[i]

    def _extend_walk(self, size: int) -> None:
        """Extend the daily log levels to `size` entries (the days' draws vectorised, the recursion in floats)."""
        days = np.arange(_ANCHOR_DAY + len(self._levels) - 1, _ANCHOR_DAY + size - 1, dtype=np.int64)
        seed, key = self.seed, self._key
        u_jump, u_size, u_sign = (units(seed, key, what, last=days) for what in (2, 5, 6))
        jumps = np.where(u_jump < _JUMP_PROBABILITY, (0.04 + 0.1 * u_size) * np.where(u_sign < 0.45, 1.0, -1.0), 0.0)
        weekly = units(seed, key, 1, last=(days + 3) // 7)  # as regime_vol()
        regime = np.searchsorted(np.cumsum(_REGIME_WEIGHTS), weekly, side="right").clip(max=len(_REGIME_VOLS) - 1)
        sigmas = (np.asarray(_REGIME_VOLS)[regime] * self.spec.vol_scale / math.sqrt(365.0)).tolist()
        trends = (math.log(self.spec.first_price) + self.spec.trend_per_year * (days - _ANCHOR_DAY) / 365.0).tolist()
        u1, u2 = units(seed, key, 3, last=days).tolist(), units(seed, key, 4, last=days).tolist()
        prev = self._levels[-1]
        for trend, sigma, a, b, jump in zip(trends, sigmas, u1, u2, jumps.tolist(), strict=True):
            prev = prev + _MEAN_REVERSION * (trend - prev) - 0.5 * sigma * sigma + sigma * _gauss_from(a, b) + jump
            self._levels.append(prev)

    def day_open(self, day: int) -> float:
        """Index level at 00:00 UTC of `day` (days since the epoch)."""
        return math.exp(self._log_level(day))

    def minute_levels(self, day: int) -> np.ndarray:
        """Index at the 1441 minute boundaries of `day` (00:00 ... next 00:00), rounded to cents (read-only)."""
        with self._lock:
            hit = self._minutes.get(day)
            if hit is not None:
                self._minutes.move_to_end(day)
                return hit
        start, end = self._log_level(day), self._log_level(day + 1)
        _, jump, jump_minute = self._day_shock(day)
        steps = gaussians(self.seed, self._key, 8, day, count=MINUTES)
        steps *= self.regime_vol(day) / math.sqrt(365.0 * MINUTES)
        steps[jump_minute] += jump  # the jump lands between minute boundaries jump_minute and jump_minute + 1
        walk = np.zeros(MINUTES + 1)
        np.cumsum(steps, out=walk[1:])
        drift = (end - start - walk[MINUTES]) / MINUTES  # pins the bridge to the next day's level
        levels = np.round(np.exp(start + walk + drift * _STEPS), 2)
        levels[0] = round(math.exp(start), 2)
        levels[MINUTES] = round(math.exp(end), 2)
        levels.flags.writeable = False  # shared through the cache
        with self._lock:
            self._minutes[day] = levels
            if len(self._minutes) > self._cache_days:
                self._minutes.popitem(last=False)
        return levels

    def index_at(self, ms: int) -> float:
        """Index level at any millisecond (linear between minute boundaries)."""
        day, offset = divmod(ms, DAY_MS)
        minute, frac = divmod(offset, MINUTE_MS)
        levels = self.minute_levels(day)
        a = float(levels[minute])
        return round(a + (float(levels[minute + 1]) - a) * frac / MINUTE_MS, 2)

    # ---- perpetual premium and funding ------------------------------------------------------------------------
    def _premium_knot(self, hour: int) -> float:
        slow = (unit(self.seed, self._key, 9, hour // 168) - 0.35) * 0.003
        fast = (unit(self.seed, self._key, 10, hour) - 0.5) * 0.0012
        return slow + fast

    def premium_at(self, ms: int) -> float:
        """Perpetual mark premium over the index (fraction), linear between hourly knots."""
        hour, rest = divmod(ms, HOUR_MS)
        a = self._premium_knot(hour)
        return a + (self._premium_knot(hour + 1) - a) * rest / HOUR_MS

    def premium_minutes(self, day: int) -> np.ndarray:
        """premium_at() for the 1441 minute boundaries of `day`, from the day's 25 hourly knots."""
        hours = day * 24 + _KNOT_HOURS
        slow = (units(self.seed, self._key, 9, last=hours // 168) - 0.35) * 0.003
        fast = (units(self.seed, self._key, 10, last=hours) - 0.5) * 0.0012
        return _hourly_interpolation(slow + fast)  # the same values as _premium_knot(), vectorised

    def interest_1h(self, hour_end: int) -> float:
        """Funding paid for the hour ending at hour index `hour_end` (Deribit: 8h rate with a ±0.025% dead band)."""
        p = 0.5 * (self._premium_knot(hour_end - 1) + self._premium_knot(hour_end))
        rate_8h = max(0.0, p - 0.00025) + min(0.0, p + 0.00025)
        return rate_8h / 8.0

    def interest_1h_many(self, hour_ends: np.ndarray) -> np.ndarray:
        """interest_1h() for every hour index in `hour_ends`: the same values, vectorised (the same float
        operations in the same order, so bit for bit equal)."""

        def knots(hours: np.ndarray) -> np.ndarray:
            slow = (units(self.seed, self._key, 9, last=hours // 168) - 0.35) * 0.003
            fast = (units(self.seed, self._key, 10, last=hours) - 0.5) * 0.0012
            return slow + fast

        hours = np.asarray(hour_ends, dtype=np.int64)
        p = 0.5 * (knots(hours - 1) + knots(hours))
        return (np.maximum(0.0, p - 0.00025) + np.minimum(0.0, p + 0.00025)) / 8.0

    # ---- futures basis and implied volatility -----------------------------------------------------------------
    def _basis_knot(self, day: int) -> float:
        slow = unit(self.seed, self._key, 11, day // 30)
        fast = unit(self.seed, self._key, 12, day) - 0.5
        return -0.02 + 0.2 * slow + 0.04 * fast

    def basis_at(self, ms: int) -> float:
        """Annualised futures basis (log), linear between daily knots."""
        day, rest = divmod(ms, DAY_MS)
        a = self._basis_knot(day)
        return a + (self._basis_knot(day + 1) - a) * rest / DAY_MS

    def basis_minutes(self, day: int) -> np.ndarray:
        """basis_at() for the 1441 minute boundaries of `day`."""
        a, b = self._basis_knot(day), self._basis_knot(day + 1)
        return a + (b - a) / MINUTES * _STEPS

    def _vol_knot(self, hour: int) -> float:
        base = self.regime_vol(hour // 24)
        return base * (1.05 + 0.2 * (unit(self.seed, self._key, 13, hour) - 0.5))

    def atm_vol_minutes(self, day: int) -> np.ndarray:
        """atm_vol_at() for the 1441 minute boundaries of `day`."""
        base = np.where(_KNOT_HOURS < 24, self.regime_vol(day), self.regime_vol(day + 1))
        fast = units(self.seed, self._key, 13, last=day * 24 + _KNOT_HOURS)
        return _hourly_interpolation(base * (1.05 + 0.2 * (fast - 0.5)))  # as _vol_knot(), vectorised

    def atm_vol_at(self, ms: int) -> float:
        """At-the-money implied volatility (annualised fraction); DVOL is this times 100."""
        hour, rest = divmod(ms, HOUR_MS)
        a = self._vol_knot(hour)
        return a + (self._vol_knot(hour + 1) - a) * rest / HOUR_MS


def _hourly_interpolation(k: np.ndarray) -> np.ndarray:
    """Values at the 1441 minute boundaries of a day, linear between its 25 hourly knots."""
    slopes = np.diff(k) / 60.0
    out = np.empty(MINUTES + 1)
    out[:MINUTES] = (k[:24, None] + slopes[:, None] * _MINUTE_OF_HOUR).ravel()
    out[MINUTES] = k[24]
    return out


def _gauss_from(u1: float, u2: float) -> float:
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
