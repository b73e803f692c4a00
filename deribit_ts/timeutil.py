"""Time parsing and rounding. Everything is UTC; the exchange speaks milliseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deribit_ts.display import shown
from deribit_ts.errors import UsageError

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# What a --since/--until may be: the exchange counts milliseconds since the epoch (nothing it holds is older),
# and every bound is later aligned up to a whole hour and compared with Python datetimes, which end in 9999.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def parse_utc(text: str, *, flag: str) -> datetime:
    """An ISO-8601 date or datetime; naive values are UTC. Refused in one line when blank, malformed or outside
    [1970-01-01, 9999-01-01]."""
    if not text or not text.strip():
        raise UsageError(f"{flag} is empty: give an ISO-8601 date or datetime (e.g. 2024-01-01), or leave it out")
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves year 1 or 9999 out of range
        raise UsageError(
            f"{flag} {shown(text)} is not an ISO-8601 date or datetime (e.g. 2024-01-01 or 2024-01-01T08:00)"
        ) from None
    if not EARLIEST <= value <= LATEST:
        raise UsageError(
            f"{flag} {shown(text)} is out of range: give a time from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)"
        )
    return value


def check_order(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise UsageError(
            f"--since {since.isoformat()} is not before --until {until.isoformat()} (--until is exclusive)"
        )


def to_ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def floor_ms(ms: int, step_ms: int) -> int:
    return ms - ms % step_ms


def ceil_ms(ms: int, step_ms: int) -> int:
    return -(-ms // step_ms) * step_ms
