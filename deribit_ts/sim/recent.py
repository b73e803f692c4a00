"""What differs near "now": the forming candle, nothing after now, and late corrections of recent minutes."""

from __future__ import annotations

import bisect
from array import array
from typing import TYPE_CHECKING

from deribit_ts.sim.blocks import Block
from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.chart import RESOLUTION_MINUTES, aggregate_block
from deribit_ts.sim.paths import DAY_MS, MINUTE_MS
from deribit_ts.sim.seeds import text_key, unit
from deribit_ts.sim.trades import candle_of, minute_trades

if TYPE_CHECKING:
    from deribit_ts.sim.market import SimMarket


def is_preliminary(market: SimMarket, inst: Instrument, tick: int, now: int) -> bool:
    """A completed minute still inside the correction window that is served with its last trade missing."""
    p = market.config.pathologies
    if not p.late_corrections:
        return False
    age = now - (tick + MINUTE_MS)
    if age < 0 or age >= p.correction_window_minutes * MINUTE_MS:
        return False
    return unit(market.config.seed, text_key(inst.name), 50, tick // MINUTE_MS) < p.correction_probability


def apply_recent(market: SimMarket, inst: Instrument, day: int, resolution: str, now: int) -> Block:
    """The day's block as seen at `now` (uncached: it changes as the clock moves)."""
    final = market.block(inst, day, "1")
    fillers = market.config.pathologies.filler_candles
    # minutes older than the correction window are final: copied in bulk, only the last few are rebuilt
    settled = now - (market.config.pathologies.correction_window_minutes + 1) * MINUTE_MS
    j0 = bisect.bisect_right(final.ticks, settled)
    out = Block(
        final.ticks[:j0],
        final.open[:j0],
        final.high[:j0],
        final.low[:j0],
        final.close[:j0],
        final.volume[:j0],
        final.cost[:j0],
        final.lots[: 4 * j0],
        final.anchor,
    )
    prev = final.close[j0 - 1] if j0 else final.anchor
    for j in range(j0, len(final.ticks)):
        tick = final.ticks[j]
        if tick > now:
            break
        if tick + MINUTE_MS > now:  # the forming minute: only trades up to now
            trades = [t for t in minute_trades(inst, final, j, market.config.seed, 0) if t.timestamp <= now]
        elif is_preliminary(market, inst, tick, now):
            trades = minute_trades(inst, final, j, market.config.seed, 0)[:-1]
        else:
            _copy(out, final, j)
            prev = final.close[j]
            continue
        if trades:
            o, h, low, c, v, cost = candle_of(inst, trades)
            _append(out, tick, o, h, low, c, v, cost)
            prev = c
        elif fillers:
            _append(out, tick, prev, prev, prev, prev, 0.0, 0.0)
    if resolution == "1":
        return out
    return aggregate_block(out, RESOLUTION_MINUTES[resolution], day * DAY_MS)


def _copy(out: Block, src: Block, j: int) -> None:
    _append(
        out,
        src.ticks[j],
        src.open[j],
        src.high[j],
        src.low[j],
        src.close[j],
        src.volume[j],
        src.cost[j],
        src.lots[4 * j : 4 * j + 4],
    )


def _append(
    out: Block,
    tick: int,
    o: float,
    h: float,
    low: float,
    c: float,
    v: float,
    cost: float,
    lots: array | tuple = (0, 0, 0, 0),
) -> None:
    out.ticks.append(tick)
    out.open.append(o)
    out.high.append(h)
    out.low.append(low)
    out.close.append(c)
    out.volume.append(v)
    out.cost.append(cost)
    out.lots.extend(lots)
