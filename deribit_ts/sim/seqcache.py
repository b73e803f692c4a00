"""Trades per day of long-lived instruments, kept on disk between simulator processes.

trade_seq is contiguous per instrument, so the first trade_seq of a day is 1 + every trade of every earlier day.
Counting a day costs its draws (about 0.3 ms of CPU, more on a busy machine): a perpetual listed in 2018 has
2,500 days before a request for 2025, which made the first trade request of a process seconds slower than the
others. The counts depend only on the simulator's code and on the market's settings, never on `now`, so they are
stored once under a key made of both and read back by every later process: the first request then costs what
the others do.

The file is a cache: unreadable, partial or absent means "count again"; it is written atomically (a rename), so
processes sharing it never see half a file. DERIBIT_TS_SIM_CACHE names the directory, or `off` to keep nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

CACHE_ENV = "DERIBIT_TS_SIM_CACHE"
MIN_DAYS = 60  # instruments with fewer days to count (options, most futures) are counted each time: it is quick


def directory() -> Path | None:
    """Where the counts live (None: nowhere)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "deribit-ts" / "sim"


@cache
def code_fingerprint() -> str:
    """A hash of the simulator's source: a change to how the market is drawn is a new key, never a stale count."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _path(key: str) -> Path | None:
    where = directory()
    if where is None:
        return None
    name = hashlib.sha256(f"{code_fingerprint()}|{key}".encode()).hexdigest()[:32]
    return where / f"day-counts-{name}.npy"


def load(key: str) -> list[int]:
    """The stored counts for `key` (trades of each day from the instrument's first), or [] when there are none."""
    path = _path(key)
    if path is None:
        return []
    try:
        counts = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return []
    if counts.ndim != 1 or counts.dtype != np.int64 or (counts < 0).any():
        return []
    return counts.tolist()


def save(key: str, counts: list[int]) -> None:
    """Store the counts for `key`, if there are enough to be worth a file; a failure to write is no error."""
    path = _path(key)
    if path is None or len(counts) < MIN_DAYS:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".day-counts-", suffix=".npy", delete=False) as tmp:
            np.save(tmp, np.asarray(counts, dtype=np.int64), allow_pickle=False)
        os.replace(tmp.name, path)
    except OSError:
        try:
            os.unlink(tmp.name)
        except (OSError, NameError):
            pass
