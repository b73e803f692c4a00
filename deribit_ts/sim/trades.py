"""The trade tape: a minute's trades, derived from its candle's price levels so the candle is exactly their aggregate.

Each price level of a traded minute (open, high, low, close; see blocks.py) is split into 1-3 trades of whole lots,
or, on a liquidation cascade, into one-lot trades that all share one millisecond. How many trades a level makes is
a vectorised function of the block, so a day's trade count is known without building its trades: that is what
makes trade_seq contiguous per instrument (the first trade_seq of a day is 1 + the trades of every earlier day)
while any day's tape is still generated on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deribit_ts.sim.blocks import Block, traded_lots
from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.paths import MINUTE_MS, UnderlyingPaths
from deribit_ts.sim.seeds import rng, text_key, units

_PARTS = 41  # draw row: how many trades a level splits into
_FLAGS = 42  # draw row: block trade / liquidation of one trade
BLOCK_TRADE_PROBABILITY = 0.01  # per option or future trade outside a cascade
LIQUIDATION_PROBABILITY = 0.004  # per future or perpetual trade outside a cascade


@dataclass(frozen=True, slots=True)
class Trade:
    timestamp: int
    price: float
    amount: float
    trade_seq: int
    trade_id: str
    lots: int
    liquidation: str | None = None  # 'M' (maker side liquidated), 'T' (taker) or None
    block_trade_id: str | None = None


def level_parts(inst: Instrument, ticks: np.ndarray, lots: np.ndarray, burst: np.ndarray, seed: int) -> np.ndarray:
    """Trades per level, shape (minutes, 4): what the tape makes of each level (0 where a level is unused)."""
    minutes = ticks // MINUTE_MS
    draws = units(seed, text_key(inst.name), _PARTS, last=(minutes[:, None] * 4 + np.arange(4)).ravel())
    parts = np.minimum(lots, 1 + (draws.reshape(-1, 4) * 3).astype(np.int64))
    parts[burst, 2] = lots[burst, 2]
    return parts


def _block_parts(inst: Instrument, blk: Block, seed: int) -> np.ndarray:
    ticks = np.frombuffer(blk.ticks, dtype=np.int64) if len(blk.ticks) else np.zeros(0, np.int64)
    lots = np.frombuffer(blk.lots, dtype=np.int64).reshape(-1, 4) if len(blk.lots) else np.zeros((0, 4), np.int64)
    burst = np.isin(ticks, np.fromiter(blk.bursts, dtype=np.int64, count=len(blk.bursts)))
    return level_parts(inst, ticks, lots, burst, seed)


def day_count(inst: Instrument, paths: UnderlyingPaths, day: int, seed: int, outages, spikes: bool) -> int:
    """How many trades the instrument makes on `day`, from the day's draws alone (no prices, no block)."""
    ticks, lots, burst = traded_lots(inst, paths, day, seed, outages, spikes)
    return int(level_parts(inst, ticks, lots, burst, seed).sum()) if len(ticks) else 0


def minute_trades(inst: Instrument, blk: Block, j: int, seed: int, first_seq: int) -> list[Trade]:
    """Trades of candle `j` of a 1-minute block, in time order (empty for filler candles); the first one gets
    trade_seq `first_seq`."""
    return _trades(inst, blk, [j], _block_parts(inst, blk, seed)[j : j + 1], seed, first_seq)


def day_trades(inst: Instrument, blk: Block, seed: int, first_seq: int) -> list[Trade]:
    """Every trade of a day's block, in time order, trade_seq counting on from `first_seq`."""
    traded = [j for j in range(len(blk.ticks)) if blk.volume[j] != 0]
    return _trades(inst, blk, traded, _block_parts(inst, blk, seed)[traded], seed, first_seq)


def _trades(inst: Instrument, blk: Block, candles: list[int], parts: np.ndarray, seed: int, seq: int) -> list[Trade]:
    key = text_key(inst.name)
    raw: list[tuple[int, float, int, int, int, bool]] = []  # (ms, price, lots, minute, k, cascade)
    for j, level_parts_j in zip(candles, parts.tolist(), strict=True):
        raw.extend(_minute(blk, j, level_parts_j, seed, key))
    if not raw:
        return []
    flags = units(seed, key, _FLAGS, last=np.array([r[3] * 100_000 + r[4] for r in raw], dtype=np.int64)).tolist()
    iid = inst.instrument_id % 1_000_000_000
    out = []
    for n, ((ms, price, count, minute, k, cascade), u) in enumerate(zip(raw, flags, strict=True)):
        liquidation, block_id = _flags(inst, u, minute, k, cascade)
        out.append(
            Trade(
                ms,
                price,
                round(count * inst.lot, 8),
                seq + n,
                f"{minute}{iid:09d}{k:05d}",
                count,
                liquidation,
                block_id,
            )
        )
    return out


def _minute(blk: Block, j: int, parts: list[int], seed: int, key: int) -> list[tuple]:
    """(ms, price, lots, minute, k, cascade) of the trades of candle j, `parts[level]` trades per level."""
    lots = blk.lots[4 * j : 4 * j + 4]
    tick = blk.ticks[j]
    minute = tick // MINUTE_MS
    burst = tick in blk.bursts
    gen = rng(seed, key, 40, minute)
    levels = [(0, blk.open[j])]
    middle = [(1, blk.high[j]), (2, blk.low[j])]
    if gen.random() < 0.5:
        middle.reverse()
    levels.extend(level for level in middle if lots[level[0]])
    if lots[3]:
        levels.append((3, blk.close[j]))
    pieces: list[tuple[float, int, bool]] = []  # (price, lots, part of the cascade)
    for level, price in levels:
        count = lots[level]
        if burst and level == 2:
            pieces.extend((price, 1, True) for _ in range(count))
            continue
        n = parts[level]
        cuts = sorted(gen.sample(range(1, count), n - 1)) if n > 1 else []
        bounds = [0, *cuts, count]
        pieces.extend((price, bounds[k + 1] - bounds[k], False) for k in range(n))
    # one instant per trade, but a single one for the whole cascade
    slots = sum(1 for p in pieces if not p[2]) + (1 if burst else 0)
    offsets = sorted(gen.sample(range(MINUTE_MS), slots))
    out = []
    slot = -1
    for k, (price, count, cascade) in enumerate(pieces):
        if not (cascade and k and pieces[k - 1][2]):
            slot += 1
        out.append((tick + offsets[slot], price, count, minute, k, cascade))
    return out


def _flags(inst: Instrument, u: float, minute: int, k: int, cascade: bool) -> tuple[str | None, str | None]:
    """(liquidation, block_trade_id) of the k-th trade of a minute, `u` its uniform draw."""
    if cascade:
        return "T", None
    if not inst.is_perpetual and u < BLOCK_TRADE_PROBABILITY:
        return None, f"{minute}{k:05d}"
    if not inst.is_option and u > 1.0 - LIQUIDATION_PROBABILITY:
        return "M", None
    return None, None


def candle_of(inst: Instrument, trades: list[Trade]) -> tuple[float, float, float, float, float, float]:
    """(open, high, low, close, volume, cost) of some trades, computed like the block generator does."""
    prices = [t.price for t in trades]
    if inst.is_option:
        volume = sum(t.amount for t in trades)
        cost = sum(t.amount * t.price for t in trades)
    else:
        volume = sum(t.amount / t.price for t in trades)
        cost = sum(t.amount for t in trades)
    return prices[0], max(prices), min(prices), prices[-1], round(volume, 8), round(cost, 8)
