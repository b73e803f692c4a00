"""The simulator's "now": wall-clock time, a frozen instant, or an instant that runs faster than real time."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from deribit_ts.sim.config import LATEST_MS


class Clock:
    """Answers now_ms(). Nothing after it exists in the simulated market."""

    def __init__(self, now: datetime | None, speed: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._speed = speed
        self._set(now)

    def _set(self, now: datetime | None) -> None:
        with self._lock:
            self._anchor_ms = None if now is None else int(now.timestamp() * 1000)
            self._anchor_real = time.monotonic()

    @property
    def is_real(self) -> bool:
        return self._anchor_ms is None

    def now_ms(self) -> int:
        if self._anchor_ms is None:
            return int(time.time() * 1000)
        if self._speed == 0:
            return self._anchor_ms
        elapsed_ms = (time.monotonic() - self._anchor_real) * 1000 * self._speed
        # A fast clock stops at the end of the simulated years instead of running off them.
        return min(self._anchor_ms + int(elapsed_ms), max(self._anchor_ms, LATEST_MS - 1))

    def set_ms(self, now_ms: int) -> None:
        """Move the simulated clock (tests use it to let a forming candle complete)."""
        with self._lock:
            self._anchor_ms = int(now_ms)
            self._anchor_real = time.monotonic()
