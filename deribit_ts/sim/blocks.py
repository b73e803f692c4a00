"""One instrument's 1-minute candles for one UTC day, generated in one pass and cached.

Each minute is built from at most four price levels (open, high, low, close) with a whole number of lots traded at
each; a minute's trades are later derived from exactly these levels (see trades.py), so the candle is always the
aggregate of that minute's trades. Minutes without trades are filler candles at the previous close. The last
minute of each day trades at the fair price of the next midnight, which is where the next day's block starts: so a
day can be generated without its predecessor and the chain of closes is still seamless.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.paths import DAY_MS, MINUTE_MS, MINUTES, YEAR_MS, UnderlyingPaths
from deribit_ts.sim.pricing import black76_usd, smile_vol
from deribit_ts.sim.seeds import rng, text_key

_SPIKE_PROBABILITY = 2e-4  # per traded minute


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
    lots: array  # 'l', 4 per candle: lots traded at open, high, low, close levels (0 = level unused)
    anchor: float  # the close before the block's first minute (used by fillers and the forming minute)

    def __len__(self) -> int:
        return len(self.ticks)


def decimals_of(tick: float) -> int:
    text = f"{tick:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def fair_prices(inst: Instrument, paths: UnderlyingPaths, day: int, minutes: range | None = None) -> list[float]:
    """Fair (mark) price at minute boundaries of `day` (1441 values, or only those in `minutes`, others 0)."""
    index = paths.minute_levels(day)
    day_ms = day * DAY_MS
    wanted = minutes if minutes is not None else range(MINUTES + 1)
    out = [0.0] * (MINUTES + 1)
    if inst.is_perpetual:
        premium = paths.premium_minutes(day)
        for i in wanted:
            out[i] = index[i] * (1.0 + premium[i])
        return out
    if not inst.is_option:
        basis = paths.basis_minutes(day)
        exp = math.exp
        for i in wanted:
            out[i] = index[i] * exp(basis[i] * max(inst.expiry_ms - day_ms - i * MINUTE_MS, 0) / YEAR_MS)
        return out
    call = inst.option_type == "call"
    for i in wanted:
        t = day_ms + i * MINUTE_MS
        out[i] = option_fair(inst, paths, t, index[i], call)
    return out


def option_fair(inst: Instrument, paths: UnderlyingPaths, t: int, index: float, call: bool | None = None) -> float:
    """Option mark in coin (USD value / forward), as Deribit quotes inverse options."""
    years = max(inst.expiry_ms - t, 0) / YEAR_MS
    forward = index * math.exp(paths.basis_at(t) * years)
    vol = smile_vol(paths.atm_vol_at(t), forward, inst.strike, years)
    usd = black76_usd(inst.option_type == "call" if call is None else call, forward, inst.strike, years, vol)
    return usd / forward


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


def generate_block(inst: Instrument, paths: UnderlyingPaths, day: int, seed: int,
                   outages: list[tuple[int, int]], fillers: bool, spikes: bool) -> Block:
    lo, hi = minute_bounds(inst, day)
    day_ms = day * DAY_MS
    tick = inst.tick
    dec = decimals_of(tick)
    inverse_volume = not inst.is_option  # futures amounts are USD; volume is in coin
    lot = inst.lot
    p_active, p_single, half_spread = _activity(inst, paths, day)
    vol_minute = paths.regime_vol(day) / math.sqrt(525600.0)
    gen = rng(seed, text_key(inst.name), 20, day)
    r = gen.random
    mean_lots = 40.0 if not inst.is_option else 5.0
    log = math.log
    blocked = _outage_minutes(outages, day_ms)
    forced_last = hi == MINUTES and inst.expiry_ms > day_ms + DAY_MS

    option = inst.is_option
    if option:
        fair = [0.0] * (MINUTES + 1)
        computed = [False] * (MINUTES + 1)
        index = paths.minute_levels(day)
        call = inst.option_type == "call"

        def fair_at(i: int) -> float:
            if not computed[i]:
                fair[i] = option_fair(inst, paths, day_ms + i * MINUTE_MS, index[i], call)
                computed[i] = True
            return fair[i]
    else:
        fair = fair_prices(inst, paths, day, range(lo, min(hi + 1, MINUTES + 1)))

        def fair_at(i: int) -> float:
            return fair[i]

    if _exact_tick(tick):  # multiples of 0.5, 2.5, 0.25 are exact binary floats: one rounding is enough
        def rt(x: float) -> float:
            v = round(x / tick) * tick
            return v if v >= tick else tick
    else:
        def rt(x: float) -> float:
            v = round(round(x / tick) * tick, dec)
            return v if v >= tick else tick

    ticks = array("q")
    opens, highs, lows, closes, vols, costs = (array("d") for _ in range(6))
    lots = array("l")
    prev = rt(fair_at(lo)) if lo < hi else 0.0
    anchor = prev
    for i in range(lo, hi):
        if blocked and i in blocked:
            continue
        last_minute = forced_last and i == MINUTES - 1
        if r() >= p_active and not last_minute:
            if fillers:
                ticks.append(day_ms + i * MINUTE_MS)
                opens.append(prev)
                highs.append(prev)
                lows.append(prev)
                closes.append(prev)
                vols.append(0.0)
                costs.append(0.0)
                lots.extend((0, 0, 0, 0))
            continue
        f0 = fair_at(i)
        f1 = fair_at(i + 1)
        spread = f0 * half_spread + tick
        o = rt(f0 + (r() - 0.5) * 2.0 * spread)
        c = rt(f1 + (r() - 0.5) * 2.0 * spread)
        if last_minute:
            c = rt(f1)
        lot_o = 1 + int(-log(1.0 - r()) * mean_lots)
        if r() < p_single and not last_minute:
            c = h = low = o
            lot_h = lot_l = lot_c = 0
        else:
            lot_c = 1 + int(-log(1.0 - r()) * mean_lots)
            top, bottom = (o, c) if o >= c else (c, o)
            h = rt(top + f0 * vol_minute * r() * 1.5)
            low = rt(bottom - f0 * vol_minute * r() * 1.5)
            if spikes and r() < _SPIKE_PROBABILITY:
                if r() < 0.5:
                    h = rt(top * (1.03 + 0.12 * r()))
                else:
                    low = rt(bottom * (0.97 - 0.12 * r()))
            lot_h = 1 + int(-log(1.0 - r()) * mean_lots) if h > top else 0
            lot_l = 1 + int(-log(1.0 - r()) * mean_lots) if low < bottom else 0
            if h <= top:
                h = top
            if low >= bottom:
                low = bottom
        if inverse_volume:
            volume = lot * (lot_o / o + lot_h / h + lot_l / low + lot_c / c)
            cost = lot * (lot_o + lot_h + lot_l + lot_c)
        else:
            volume = lot * (lot_o + lot_h + lot_l + lot_c)
            cost = lot * (lot_o * o + lot_h * h + lot_l * low + lot_c * c)
        ticks.append(day_ms + i * MINUTE_MS)
        opens.append(o)
        highs.append(h)
        lows.append(low)
        closes.append(c)
        vols.append(round(volume, 8))
        costs.append(round(cost, 8))
        lots.extend((lot_o, lot_h, lot_l, lot_c))
        prev = c
    return Block(ticks, opens, highs, lows, closes, vols, costs, lots, anchor)


def _exact_tick(tick: float) -> bool:
    return (tick * 1024).is_integer()


def _outage_minutes(outages: list[tuple[int, int]], day_ms: int) -> set[int]:
    blocked: set[int] = set()
    for start, end in outages:
        if end <= day_ms or start >= day_ms + DAY_MS:
            continue
        first = max(0, (start - day_ms) // MINUTE_MS)
        last = min(MINUTES, -((day_ms - end) // MINUTE_MS))
        blocked.update(range(first, last))
    return blocked
