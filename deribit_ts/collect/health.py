"""Pings of a healthchecks.io-style endpoint (and systemd's watchdog, fed from the same events): `URL/start` on
start, `URL` while healthy, `URL/fail` with a one-line reason on errors. Pings never block collecting: each is sent
in the background with a short timeout, and a ping that fails is logged and forgotten (the monitoring side alerts
on missing pings anyway)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from deribit_ts.collect.systemd import Watchdog

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 10.0
SUCCESS_EVERY_S = 60.0  # healthchecks.io periods are minutes: one success ping a minute is plenty
FAIL_EVERY_S = 60.0  # a lasting failure is repeated this often, a new reason at once


class Healthcheck:
    def __init__(self, url: str | None):
        self.url = url.rstrip("/") if url else None
        self._last_success = -float("inf")
        self._last_fail = -float("inf")
        self._last_reason: str | None = None
        self._pending: set[asyncio.Task] = set()
        self.watchdog = Watchdog()  # systemd's, fed by the same events (a no-op outside a Type=notify unit)

    def start(self) -> None:
        self._send("/start", "")

    def success(self) -> None:
        now = time.monotonic()
        if now - self._last_success >= SUCCESS_EVERY_S or self._last_reason is not None:
            self._last_success = now
            self._last_reason = None
            self._send("", "")

    def fail(self, reason: str) -> None:
        reason = " ".join(reason.split())[:500]  # one line, bounded
        now = time.monotonic()
        if reason != self._last_reason or now - self._last_fail >= FAIL_EVERY_S:
            self._last_fail = now
            self._last_reason = reason
            self._send("/fail", reason)

    def _send(self, suffix: str, body: str) -> None:
        if self.url is None:
            return
        task = asyncio.get_running_loop().create_task(self._post(self.url + suffix, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, url: str, body: str) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=PING_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(url, data=body.encode()) as reply:
                    await reply.read()
                    if reply.status >= 400:
                        log.warning("healthcheck ping %s answered HTTP %s", url, reply.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("healthcheck ping %s failed: %s", url, exc)

    async def drain(self, timeout_s: float = 3.0) -> None:
        """Give the pings in flight a moment to go out (on exit)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)
