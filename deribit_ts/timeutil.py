"""Time parsing and rounding. Everything is UTC; the exchange speaks milliseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deribit_ts.errors import UserError

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_utc(text: str, *, flag: str) -> datetime:
    """An ISO-8601 date or datetime; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{flag} {text!r} is not an ISO-8601 date or datetime (e.g. 2024-01-01 or 2024-01-01T08:00)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_order(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise UserError(f"--since {since.isoformat()} is not before --until {until.isoformat()} (--until is exclusive)")


def to_ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def floor_ms(ms: int, step_ms: int) -> int:
    return ms - ms % step_ms


def ceil_ms(ms: int, step_ms: int) -> int:
    return -(-ms // step_ms) * step_ms
