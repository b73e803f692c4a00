"""systemd's notify protocol, without a dependency: READY=1 once running, WATCHDOG=1 while alive, STATUS=, STOPPING=1.

Only active under a unit with Type=notify (systemd sets NOTIFY_SOCKET) and WatchdogSec= (WATCHDOG_USEC). The
watchdog is fed while the collector makes progress: a heartbeat written, or an attempt to reach a database that is
down. A process whose event loop hangs, or whose heartbeat stops without an error, stops feeding it and systemd
restarts it; a long database or exchange outage does not (the process is working as designed, retrying).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path  # '@' names an abstract socket


def notify(message: str) -> bool:
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False


def watchdog_interval_s() -> float | None:
    """How often systemd wants WATCHDOG=1 (half its WatchdogSec), or None without a watchdog for this process."""
    usec = os.environ.get("WATCHDOG_USEC", "").strip()
    pid = os.environ.get("WATCHDOG_PID", "").strip()
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


class Watchdog:
    """progress() marks that the collector did something; fed to systemd at most every half interval."""

    def __init__(self) -> None:
        self.interval = watchdog_interval_s()
        self._last = -float("inf")

    def progress(self, status: str | None = None) -> None:
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval / 2:
            self._last = now
            notify("WATCHDOG=1" + (f"\nSTATUS={status[:200]}" if status else ""))
