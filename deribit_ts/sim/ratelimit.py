"""Deribit's credit model, kept per client address: each request costs credits, pools refill continuously."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CreditRule:
    cost: int
    pool: int
    refill_per_s: int


DEFAULT_RULE = CreditRule(500, 50_000, 10_000)  # 20 req/s sustained, burst 100
METHOD_RULES = {"get_instruments": CreditRule(10_000, 500_000, 10_000)}  # 1 req/s sustained, burst 50


class CreditLimiter:
    """Answers allow(client, method): False when the client's pool for that method is short of the cost."""

    def __init__(self, enabled: bool = True, clock=time.monotonic, scale: float = 1.0) -> None:
        self.enabled = enabled
        self.scale = scale  # pools and refill times this (Deribit's allowance scaled, e.g. for fast tests)
        self._clock = clock
        self._pools: dict[tuple[str, str], list[float]] = {}  # (client, pool name) -> [credits, last refill]
        self._lock = threading.Lock()

    def allow(self, client: str, method: str) -> bool:
        if not self.enabled:
            return True
        rule = METHOD_RULES.get(method, DEFAULT_RULE)
        pool_name = method if method in METHOD_RULES else "default"
        now = self._clock()
        with self._lock:
            state = self._pools.get((client, pool_name))
            pool = rule.pool * self.scale
            if state is None:
                state = self._pools[(client, pool_name)] = [pool, now]
            credits = min(pool, state[0] + (now - state[1]) * rule.refill_per_s * self.scale)
            state[1] = now
            if credits < rule.cost:
                state[0] = credits
                return False
            state[0] = credits - rule.cost
            return True

    def reset(self) -> None:
        with self._lock:
            self._pools.clear()
