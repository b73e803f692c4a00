"""A minute's trades, derived from its candle's price levels so the candle is exactly their aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from deribit_ts.sim.blocks import Block
from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.paths import MINUTE_MS
from deribit_ts.sim.seeds import rng, text_key

SEQ_PER_MINUTE = 16  # trade_seq = minutes since listing * 16 + k: monotonic, with gaps


@dataclass(frozen=True, slots=True)
class Trade:
    timestamp: int
    price: float
    amount: float
    trade_seq: int
    trade_id: str
    lots: int


def minute_trades(inst: Instrument, blk: Block, j: int, seed: int) -> list[Trade]:
    """Trades of candle `j` of a 1-minute block, in time order (empty for filler candles)."""
    lots = blk.lots[4 * j : 4 * j + 4]
    if not any(lots):
        return []
    tick = blk.ticks[j]
    gen = rng(seed, text_key(inst.name), 40, tick // MINUTE_MS)
    levels = [(blk.open[j], lots[0])]
    middle = [(blk.high[j], lots[1]), (blk.low[j], lots[2])]
    if gen.random() < 0.5:
        middle.reverse()
    levels.extend(level for level in middle if level[1])
    if lots[3]:
        levels.append((blk.close[j], lots[3]))
    pieces: list[tuple[float, int]] = []
    for price, count in levels:
        parts = min(count, 1 + gen.randrange(3))
        cuts = sorted(gen.sample(range(1, count), parts - 1)) if parts > 1 else []
        bounds = [0, *cuts, count]
        pieces.extend((price, bounds[k + 1] - bounds[k]) for k in range(parts))
    offsets = sorted(gen.sample(range(MINUTE_MS), len(pieces)))
    minute_no = (tick - inst.creation_ms) // MINUTE_MS
    id_base = f"{tick // MINUTE_MS}{inst.instrument_id % 1_000_000_000:09d}"
    out = []
    for k, ((price, count), offset) in enumerate(zip(pieces, offsets, strict=True)):
        out.append(
            Trade(
                tick + offset,
                price,
                round(count * inst.lot, 8),
                minute_no * SEQ_PER_MINUTE + k + 1,
                f"{id_base}{k:02d}",
                count,
            )
        )
    return out


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
