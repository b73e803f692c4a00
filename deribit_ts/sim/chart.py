"""Chart resolutions and the aggregation of 1-minute candles into wider buckets."""

from __future__ import annotations

import numpy as np

from deribit_ts.sim.blocks import Block, as_array, empty_block
from deribit_ts.sim.paths import MINUTE_MS

RESOLUTION_MINUTES = {
    "1": 1,
    "3": 3,
    "5": 5,
    "10": 10,
    "15": 15,
    "30": 30,
    "60": 60,
    "120": 120,
    "180": 180,
    "360": 360,
    "720": 720,
    "1D": 1440,
}
RESOLUTION_ALIASES = {"1440": "1D"}  # accepted by the real API although undocumented


def aggregate_block(minutes: Block, resolution_minutes: int, day_ms: int) -> Block:
    """Buckets aligned to the UTC day: open of the first minute, close of the last, extremes, sums."""
    n = len(minutes)
    if n == 0:
        return empty_block(minutes.anchor)
    width = resolution_minutes * MINUTE_MS
    ticks = np.frombuffer(minutes.ticks, dtype=np.int64)
    buckets = day_ms + (ticks - day_ms) // width * width
    first = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    last = np.concatenate((first[1:], [n])) - 1

    def column(name: str) -> np.ndarray:
        return np.frombuffer(getattr(minutes, name), dtype=np.float64)

    out = empty_block(minutes.anchor)
    out.ticks = as_array("q", buckets[first])
    out.open = as_array("d", column("open")[first])
    out.high = as_array("d", np.maximum.reduceat(column("high"), first))
    out.low = as_array("d", np.minimum.reduceat(column("low"), first))
    out.close = as_array("d", column("close")[last])
    out.volume = as_array("d", np.round(np.add.reduceat(column("volume"), first), 8))
    out.cost = as_array("d", np.round(np.add.reduceat(column("cost"), first), 8))
    return out
