"""Counters of everything the simulator served, readable from /_sim/stats and SimHandle.stats()."""

from __future__ import annotations

import threading
import time
from collections import Counter


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_method: Counter[str] = Counter()
            self.errors_by_code: Counter[str] = Counter()
            self.faults_by_kind: Counter[str] = Counter()
            self.http_status: Counter[str] = Counter()
            self.candles_served = 0
            self.bytes_sent = 0
            # per method, when its first and last answer was sent (epoch seconds): a benchmark tells the span its
            # requests were served in from the command's start-up and wind-down
            self.first_at: dict[str, float] = {}
            self.last_at: dict[str, float] = {}

    def record(
        self,
        method: str,
        status: int,
        *,
        error_code: int | None = None,
        fault: str | None = None,
        candles: int = 0,
        size: int = 0,
    ) -> None:
        with self._lock:
            self.requests += 1
            self.by_method[method] += 1
            self.last_at[method] = time.time()
            self.first_at.setdefault(method, self.last_at[method])
            self.http_status[str(status)] += 1
            if error_code is not None:
                self.errors_by_code[str(error_code)] += 1
            if fault is not None:
                self.faults_by_kind[fault] += 1
            self.candles_served += candles
            self.bytes_sent += size

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "requests_by_method": dict(self.by_method),
                "errors_by_code": dict(self.errors_by_code),
                "faults_by_kind": dict(self.faults_by_kind),
                "http_status": dict(self.http_status),
                "candles_served": self.candles_served,
                "bytes_sent": self.bytes_sent,
                "first_at_by_method": dict(self.first_at),
                "last_at_by_method": dict(self.last_at),
            }
