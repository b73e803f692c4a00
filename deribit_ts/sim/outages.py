"""Exchange outage windows: a few deterministic stretches with no data at all."""

from __future__ import annotations

from deribit_ts.sim.config import SimConfig
from deribit_ts.sim.paths import DAY_MS, MINUTE_MS
from deribit_ts.sim.seeds import unit

_SPREAD_DAYS = 7 * 365  # outages after the first are spread over seven years from the start


def windows(config: SimConfig) -> list[tuple[int, int]]:
    """[start_ms, end_ms) windows, sorted. The first falls within 20-60 days of the start so short test
    histories meet one; none crosses midnight (the daily close chain stays intact)."""
    start_day = config.start_ms // DAY_MS
    out = []
    for k in range(config.outage_count):
        if k == 0:
            day = start_day + 20 + int(40 * unit(config.seed, 90, k))
        else:
            day = start_day + 60 + int(_SPREAD_DAYS * unit(config.seed, 91, k))
        minutes = 15 + int(165 * unit(config.seed, 92, k))  # 15 min .. 3 h
        first = 30 + int((1440 - 90 - minutes - 30) * unit(config.seed, 93, k))
        begin = day * DAY_MS + first * MINUTE_MS
        out.append((begin, begin + minutes * MINUTE_MS))
    return sorted(out)
