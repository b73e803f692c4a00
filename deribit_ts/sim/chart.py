"""Chart resolutions and the aggregation of 1-minute candles into wider buckets."""

from __future__ import annotations

from array import array

from deribit_ts.sim.blocks import Block
from deribit_ts.sim.paths import MINUTE_MS

RESOLUTION_MINUTES = {"1": 1, "3": 3, "5": 5, "10": 10, "15": 15, "30": 30, "60": 60, "120": 120, "180": 180,
                      "360": 360, "720": 720, "1D": 1440}
RESOLUTION_ALIASES = {"1440": "1D"}  # accepted by the real API although undocumented


def aggregate_block(minutes: Block, resolution_minutes: int, day_ms: int) -> Block:
    """Buckets aligned to the UTC day: open of the first minute, close of the last, extremes, sums."""
    out = Block(array("q"), array("d"), array("d"), array("d"), array("d"), array("d"), array("d"), array("l"),
                minutes.anchor)
    width = resolution_minutes * MINUTE_MS
    ticks, opens, highs, lows, closes = minutes.ticks, minutes.open, minutes.high, minutes.low, minutes.close
    vols, costs = minutes.volume, minutes.cost
    n = len(ticks)
    i = 0
    while i < n:
        bucket = day_ms + (ticks[i] - day_ms) // width * width
        limit = bucket + width
        j = i
        high, low, volume, cost = highs[i], lows[i], 0.0, 0.0
        while j < n and ticks[j] < limit:
            if highs[j] > high:
                high = highs[j]
            if lows[j] < low:
                low = lows[j]
            volume += vols[j]
            cost += costs[j]
            j += 1
        out.ticks.append(bucket)
        out.open.append(opens[i])
        out.high.append(high)
        out.low.append(low)
        out.close.append(closes[j - 1])
        out.volume.append(round(volume, 8))
        out.cost.append(round(cost, 8))
        i = j
    return out
