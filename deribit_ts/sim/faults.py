"""Injected failures: which request fails and how is a deterministic sequence drawn from the seed."""

from __future__ import annotations

import random
import threading

from deribit_ts.sim.config import SimConfig
from deribit_ts.sim.seeds import mix

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


class FaultPlan:
    """next() -> None (answer normally) or one of the configured fault kinds, in request arrival order."""

    def __init__(self, config: SimConfig) -> None:
        self.rate = config.fault_rate
        self.kinds = tuple(config.fault_kinds)
        self._seed = config.seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._rng = random.Random(mix(self._seed, 0xFA17))

    def next(self) -> str | None:
        if self.rate <= 0 or not self.kinds:
            return None
        with self._lock:
            hit = self._rng.random() < self.rate
            kind = self.kinds[self._rng.randrange(len(self.kinds))]
        return kind if hit else None
