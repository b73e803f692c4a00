"""One instrument's 1-minute candles for one UTC day, generated in one vectorised pass and cached.

Each minute is built from at most four price levels (open, high, low, close) with a whole number of lots traded at
each; a minute's trades are later derived from exactly these levels (see trades.py), so the candle is always the
aggregate of that minute's trades. Minutes without trades are filler candles at the previous close. The last
minute of each day trades at the fair price of the next midnight, which is where the next day's block starts: so a
day can be generated without its predecessor and the chain of closes is still seamless.

Every minute of the day gets the same fixed set of uniform draws (one row per use, below) whether it trades or
not, so the whole day is computed with numpy array operations instead of a loop over minutes.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.paths import DAY_MS, MINUTE_MS, MINUTES, YEAR_MS, UnderlyingPaths
from deribit_ts.sim.pricing import black76_usd_array, smile_vol_array
from deribit_ts.sim.seeds import text_key, uniforms

_SPIKE_PROBABILITY = 2e-4  # per traded minute
# A liquidation cascade: thousands of one-lot trades at one millisecond on the low level of a future's or
# perpetual's minute (about one a week on a perpetual). Drawn from the spike row's range [0.5, 0.5 + p), which
# never overlaps the spikes' [0, 2e-4), so adding cascades moved no other minute.
_BURST_PROBABILITY = 1e-4
_NO_EXTREME = 0.02  # a traded minute's high (low) level has no lots when its draw is below this
_BURST_LOTS = (1500, 2500)  # lots of a cascade: at least the first, plus up to the second
# rows of a day's uniform draws, one column per minute
(_ACTIVE, _OPEN, _CLOSE, _SINGLE, _HIGH, _LOW, _LOT_O, _LOT_H, _LOT_L, _LOT_C, _SPIKE, _SPIKE_SIDE, _SPIKE_SIZE) = (
    range(13)
)
_DRAWS = 13


@dataclass(slots=True)
class Block:
    """Parallel columns; one entry per minute that has a candle."""

    ticks: array  # 'q' minute open times (ms)
    open: array
    high: array
    low: array
    close: array
    volume: array
    cost: array
    lots: array  # 'q', 4 per candle: lots traded at open, high, low, close levels (0 = level unused)
    anchor: float  # the close before the block's first minute (used by fillers and the forming minute)
    bursts: frozenset[int] = frozenset()  # ticks of the minutes whose low level is a liquidation cascade

    def __len__(self) -> int:
        return len(self.ticks)


def empty_block(anchor: float) -> Block:
    return Block(array("q"), array("d"), array("d"), array("d"), array("d"), array("d"), array("d"), array("q"), anchor)


def decimals_of(tick: float) -> int:
    text = f"{tick:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def tick_rounder(tick: float):
    """Rounds an array to whole ticks (at least one tick), as floats that print as the decimal price.

    A price is n ticks = n·k / 10^d with integers n·k and 10^d: one correctly rounded division gives the double
    nearest to the decimal, so JSON shows 0.0155, never 0.015500000000000002.
    """
    scale = 10.0 ** decimals_of(tick)
    k = round(tick * scale)

    def rt(x: np.ndarray) -> np.ndarray:
        return np.maximum(np.rint(x / tick), 1.0) * k / scale

    return rt


def fair_prices(inst: Instrument, paths: UnderlyingPaths, day: int, minutes: np.ndarray | None = None) -> np.ndarray:
    """Fair (mark) price at the minute boundaries `minutes` of `day` (default: all 1441)."""
    if minutes is None:
        minutes = np.arange(MINUTES + 1)
    index = paths.minute_levels(day)[minutes]
    if inst.is_perpetual:
        return index * (1.0 + paths.premium_minutes(day)[minutes])
    years = np.maximum(inst.expiry_ms - (day * DAY_MS + minutes * MINUTE_MS), 0) / YEAR_MS
    forward = index * np.exp(paths.basis_minutes(day)[minutes] * years)
    if not inst.is_option:
        return forward
    vol = smile_vol_array(paths.atm_vol_minutes(day)[minutes], forward, inst.strike, years)
    return black76_usd_array(inst.option_type == "call", forward, inst.strike, years, vol) / forward


def minute_bounds(inst: Instrument, day: int) -> tuple[int, int]:
    """[first, last) minute indexes of `day` on which the instrument can trade."""
    day_ms = day * DAY_MS
    lo = max(0, -((day_ms - inst.creation_ms) // MINUTE_MS))
    hi = min(MINUTES, (inst.expiry_ms - day_ms) // MINUTE_MS)
    return lo, max(lo, hi)


def _activity(inst: Instrument, paths: UnderlyingPaths, day: int) -> tuple[float, float, float]:
    """(probability a minute trades, probability a traded minute is one level only, relative half-spread)."""
    if inst.is_perpetual:
        return 0.9, 0.15, 0.00005
    if not inst.is_option:
        p = {"quarter": 0.55, "month": 0.4, "week": 0.3, "day": 0.2}[inst.expiry_kind]
        return p, 0.4, 0.0002
    spot = paths.day_open(day)
    p = max(0.003, 0.05 * math.exp(-4.0 * abs(math.log(inst.strike / spot))))
    return p, 0.8, 0.02


def generate_block(
    inst: Instrument,
    paths: UnderlyingPaths,
    day: int,
    seed: int,
    outages: list[tuple[int, int]],
    fillers: bool,
    spikes: bool,
) -> Block:
    lo, hi = minute_bounds(inst, day)
    if lo >= hi:
        return empty_block(0.0)
    n = hi - lo
    rt = tick_rounder(inst.tick)
    _, p_single, half_spread = _activity(inst, paths, day)
    u, last, traded = _draws(inst, paths, day, seed, outages, lo, hi)
    tradable = _outside_outages(outages, day * DAY_MS, lo, hi)
    t = np.flatnonzero(traded)
    # options price only the minutes they need (they trade rarely); futures have cheap whole-day fair arrays
    needed = np.concatenate(([lo], lo + t, lo + t + 1)) if inst.is_option else None
    fair = _fair_lookup(inst, paths, day, needed)
    levels = _traded_levels(
        inst,
        rt,
        u[:, t],
        fair[lo + t],
        fair[lo + t + 1],
        last[t],
        p_single,
        half_spread,
        paths.regime_vol(day) / math.sqrt(525600.0),
        spikes,
    )
    anchor = float(rt(fair[lo : lo + 1])[0])
    return _assemble(day * DAY_MS, lo, n, t, traded, tradable if fillers else traded, levels, anchor)


def _fair_lookup(inst: Instrument, paths: UnderlyingPaths, day: int, needed: np.ndarray | None) -> np.ndarray:
    """Fair prices indexable by minute boundary (only `needed` ones filled in when given)."""
    if needed is None:
        return fair_prices(inst, paths, day)
    wanted = np.unique(needed)
    fair = np.zeros(MINUTES + 1)
    fair[wanted] = fair_prices(inst, paths, day, wanted)
    return fair


def _lots(u: np.ndarray, mean: float) -> np.ndarray:
    """Whole lots, 1 + an exponential with the given mean."""
    return 1 + (-np.log1p(-u) * mean).astype(np.int64)


def level_lots(
    inst: Instrument, u: np.ndarray, last: np.ndarray, p_single: float, spikes: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lots[k, 4] at open, high, low, close, single-level mask, cascade mask) of the traded minutes whose draws
    are `u`. Prices play no part, so a day's trade count is known from its draws alone (trades.py)."""
    mean_lots = 5.0 if inst.is_option else 40.0
    single = (u[_SINGLE] < p_single) & ~last  # one price level only: open = high = low = close
    burst = np.zeros(u.shape[1], dtype=bool)
    if not inst.is_option:
        burst = (u[_SPIKE] >= 0.5) & (u[_SPIKE] < 0.5 + _BURST_PROBABILITY) & ~single & ~last
    spike = (u[_SPIKE] < _SPIKE_PROBABILITY) if spikes else np.zeros(u.shape[1], dtype=bool)
    up = u[_SPIKE_SIDE] < 0.5
    has_high = ~single & ((u[_HIGH] >= _NO_EXTREME) | (spike & up))
    has_low = ~single & ((u[_LOW] >= _NO_EXTREME) | (spike & ~up) | burst)
    lots = np.zeros((u.shape[1], 4), dtype=np.int64)
    lots[:, 0] = _lots(u[_LOT_O], mean_lots)
    lots[:, 1] = np.where(has_high, _lots(u[_LOT_H], mean_lots), 0)
    cascade = _BURST_LOTS[0] + (u[_SPIKE_SIZE] * _BURST_LOTS[1]).astype(np.int64)
    lots[:, 2] = np.where(burst, cascade, np.where(has_low, _lots(u[_LOT_L], mean_lots), 0))
    lots[:, 3] = np.where(single, 0, _lots(u[_LOT_C], mean_lots))
    return lots, single, burst


def traded_lots(inst: Instrument, paths: UnderlyingPaths, day: int, seed: int, outages, spikes: bool):
    """(minute open times, lots[k, 4], cascade mask) of the day's traded minutes, from the draws only: what
    generate_block() trades, without pricing anything."""
    lo, hi = minute_bounds(inst, day)
    if lo >= hi:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros(0, bool)
    _, p_single, _ = _activity(inst, paths, day)
    u, last, traded = _draws(inst, paths, day, seed, outages, lo, hi)
    t = np.flatnonzero(traded)
    lots, _, burst = level_lots(inst, u[:, t], last[t], p_single, spikes)
    return day * DAY_MS + (lo + t).astype(np.int64) * MINUTE_MS, lots, burst


def _draws(inst: Instrument, paths: UnderlyingPaths, day: int, seed: int, outages, lo: int, hi: int):
    """(the day's uniform draws, last-minute mask, traded mask) over minutes lo..hi-1."""
    n = hi - lo
    p_active, _, _ = _activity(inst, paths, day)
    u = uniforms(seed, text_key(inst.name), 20, day, shape=(_DRAWS, n))
    tradable = _outside_outages(outages, day * DAY_MS, lo, hi)
    last = np.zeros(n, dtype=bool)
    last[-1] = hi == MINUTES and inst.expiry_ms > (day + 1) * DAY_MS  # trades at the next midnight's fair price
    traded = ((u[_ACTIVE] < p_active) | last) & tradable
    return u, last, traded


def _traded_levels(
    inst: Instrument,
    rt,
    u: np.ndarray,
    f0: np.ndarray,
    f1: np.ndarray,
    last: np.ndarray,
    p_single: float,
    half_spread: float,
    vol_minute: float,
    spikes: bool,
) -> tuple[np.ndarray, ...]:
    """(open, high, low, close, lots[k, 4], volume, cost, cascade mask) of the traded minutes; `u` holds their
    draws."""
    spread = f0 * half_spread + inst.tick
    o = rt(f0 + (u[_OPEN] - 0.5) * 2.0 * spread)
    c = np.where(last, rt(f1), rt(f1 + (u[_CLOSE] - 0.5) * 2.0 * spread))
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    h = rt(top + f0 * vol_minute * u[_HIGH] * 1.5)
    low = rt(bottom - f0 * vol_minute * u[_LOW] * 1.5)
    if spikes:  # a bad tick: one level far off the fair price
        spike = u[_SPIKE] < _SPIKE_PROBABILITY
        up = u[_SPIKE_SIDE] < 0.5
        h = np.where(spike & up, rt(top * (1.03 + 0.12 * u[_SPIKE_SIZE])), h)
        low = np.where(spike & ~up, rt(bottom * (0.97 - 0.12 * u[_SPIKE_SIZE])), low)
    lots, single, burst = level_lots(inst, u, last, p_single, spikes)
    # a level with lots lies beyond open and close (by a tick at least), one without is at them
    h = np.where(lots[:, 1] > 0, np.maximum(h, rt(top + inst.tick)), top)
    low = np.where(lots[:, 2] > 0, np.minimum(low, rt(bottom - inst.tick)), bottom)
    low = np.where(burst, np.minimum(low, rt(bottom * 0.997 - inst.tick)), low)
    h = np.where(single, o, np.maximum(h, top))
    low = np.where(single, o, np.minimum(low, bottom))
    c = np.where(single, o, c)
    prices = np.stack((o, h, low, c), axis=1)
    if inst.is_option:  # amounts in coin, cost in coin
        volume = inst.lot * lots.sum(axis=1)
        cost = inst.lot * (lots * prices).sum(axis=1)
    else:  # amounts in USD, volume in coin
        volume = inst.lot * (lots / prices).sum(axis=1)
        cost = inst.lot * lots.sum(axis=1)
    return o, h, low, c, lots, np.round(volume, 8), np.round(cost, 8), burst & (lots[:, 2] > 0)


def _assemble(
    day_ms: int,
    lo: int,
    n: int,
    t: np.ndarray,
    traded: np.ndarray,
    rows: np.ndarray,
    levels: tuple[np.ndarray, ...],
    anchor: float,
) -> Block:
    """The block's columns: traded minutes from `levels`, the other `rows` as fillers at the previous close."""
    o, h, low, c, lots, volume, cost, burst = levels
    # index of the last traded minute at or before each minute (-1: none yet, the anchor applies)
    last_traded = np.maximum.accumulate(np.where(traded, np.arange(n), -1))
    closes = np.full(n + 1, anchor)  # slot n holds the anchor for last_traded == -1
    closes[t] = c
    prev = closes[last_traded]
    columns = []
    for traded_values in (o, h, low, c):
        full = prev.copy()
        full[t] = traded_values
        columns.append(full)
    for traded_values in (volume, cost):
        full = np.zeros(n)
        full[t] = traded_values
        columns.append(full)
    all_lots = np.zeros((n, 4), dtype=np.int64)
    all_lots[t] = lots
    keep = np.flatnonzero(rows)
    ticks = day_ms + (lo + keep).astype(np.int64) * MINUTE_MS
    bursts = frozenset((day_ms + (lo + t[burst]).astype(np.int64) * MINUTE_MS).tolist())
    return Block(
        as_array("q", ticks),
        *(as_array("d", col[keep]) for col in columns),
        as_array("q", all_lots[keep]),
        anchor,
        bursts,
    )


def as_array(typecode: str, values: np.ndarray) -> array:
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64 if typecode == "q" else np.float64).tobytes())
    return out


def _outside_outages(outages: list[tuple[int, int]], day_ms: int, lo: int, hi: int) -> np.ndarray:
    """Mask of the minutes lo..hi-1 of the day that are not inside an exchange outage."""
    ok = np.ones(hi - lo, dtype=bool)
    for start, end in outages:
        if end <= day_ms or start >= day_ms + DAY_MS:
            continue
        first = max(0, (start - day_ms) // MINUTE_MS)
        stop = min(MINUTES, -((day_ms - end) // MINUTE_MS))
        ok[max(first - lo, 0) : max(stop - lo, 0)] = False
    return ok
