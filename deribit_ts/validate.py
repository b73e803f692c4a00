"""Checks of what a user types (flags, environment variables), in one place, before anything is written.

Every function here returns the cleaned value or raises ``UsageError`` (one line on stderr, exit 2) naming the
flag or variable, what is wrong and what would be right. A value is echoed only cut short (``shown``), so a
100 kB argument never comes back as a 100 kB error line. Command modules call these (through
``deribit_ts.cli.common``) at the top of a command, before connecting to anything.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Iterable
from datetime import datetime

from deribit_ts.display import SHOWN_CHARS, shown
from deribit_ts.errors import UsageError
from deribit_ts.masking import mask_password, remember_secrets
from deribit_ts.timeutil import parse_utc

__all__ = ["SHOWN_CHARS", "shown"]  # (re-exported: command modules import them from here)

NAME_MAX_CHARS = 64  # instrument, index and currency names (Deribit's longest are about 30)
URL_MAX_CHARS = 2048
DSN_MAX_CHARS = 4096
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII digits only: int() would take '١٢', '1_000', ' 1 '


def text(value: str | None, flag: str, *, max_chars: int | None = None) -> str:
    """A non-blank single-line value, stripped. (None passes through: the flag was not given.)"""
    if value is None:
        return value  # type: ignore[return-value]
    if not value.strip():
        raise UsageError(f"{flag} is empty: give a value, or leave the option out for its default")
    if CONTROL_CHARS.search(value):
        raise UsageError(f"{flag} {shown(value)} contains control characters (a newline, a NUL byte, ...)")
    value = value.strip()
    if max_chars is not None and len(value) > max_chars:
        raise UsageError(f"{flag} {shown(value)} is too long (at most {max_chars} characters)")
    return value


def names(values: str | Iterable[str] | None, flag: str, *, case: str | None = None) -> list[str] | None:
    """A comma-separated (and/or repeated) list of names such as BTC,ETH or BTC-PERPETUAL. None: not given.
    Every item must be a plausible name: an empty item (``--currency ""``, ``BTC,,ETH``) is refused, not dropped,
    because dropping it would widen or silently empty the request. `case` is 'upper' or 'lower' to normalise."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    if not items:
        return None
    found: list[str] = []
    for item in items:
        for part in text(item, flag).split(","):
            part = part.strip()
            if not part:
                raise UsageError(
                    f"{flag} {shown(item)} has an empty name in its list: give names separated by "
                    "single commas, e.g. BTC,ETH"
                )
            if len(part) > NAME_MAX_CHARS or not _NAME.fullmatch(part):
                raise UsageError(
                    f"{flag} {shown(part)} is not a valid name (letters, digits, '-', '_' and '.', "
                    f"at most {NAME_MAX_CHARS} characters)"
                )
            part = part.upper() if case == "upper" else part.lower() if case == "lower" else part
            if part not in found:
                found.append(part)
    return found


def timestamp(value: str | None, flag: str) -> datetime | None:
    """An ISO-8601 date or datetime (naive = UTC) within what the exchange and PostgreSQL hold. None: not given."""
    if value is None:
        return None
    return parse_utc(text(value, flag), flag=flag)


def whole_number(raw: object, name: str, *, minimum: int, maximum: int) -> int:
    """A whole number within [minimum, maximum]: the one parser of every integer setting (flag or variable)."""
    given = f"{name}={shown(raw)}" if name.isupper() else f"{name} {shown(raw)}"  # a variable, or a flag
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        text_value = str(raw).strip()
        if not _WHOLE_NUMBER.fullmatch(text_value):
            raise UsageError(f"{given} is not a whole number from {minimum} to {maximum}")
        value = int(text_value)
    if not minimum <= value <= maximum:
        raise UsageError(f"{given} is out of range: give a whole number from {minimum} to {maximum}")
    return value


def env(name: str) -> str | None:
    """An environment variable's value, stripped; None when unset. Set but blank is refused: an empty
    DERIBIT_TS_API_URL meaning "the real exchange" is exactly the surprise a script must not get."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    if not raw.strip():
        raise UsageError(f"{name} is set but empty: give it a value or unset it (unset {name})")
    if CONTROL_CHARS.search(raw):
        raise UsageError(f"{name}={shown(raw)} contains control characters")
    return raw.strip()


def api_url(value: str, flag: str = "--api-url / DERIBIT_TS_API_URL") -> str:
    """An http(s) base URL with a host and a valid port, without a trailing slash. Checked here so a URL that
    cannot work fails at once, not after a minute of retries."""
    value = text(value, flag, max_chars=URL_MAX_CHARS)
    remember_secrets(value)
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise UsageError(f"{flag} {shown(mask_password(value))} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(
            f"{flag} {shown(mask_password(value))} is not an http:// or https:// URL "
            "(e.g. http://127.0.0.1:8765 for the simulator)"
        )
    if not parts.hostname:
        raise UsageError(f"{flag} {shown(mask_password(value))} has no host name")
    if port == 0:
        raise UsageError(f"{flag} {shown(mask_password(value))}: port 0 is not a port one can connect to")
    if parts.query or parts.fragment:
        raise UsageError(f"{flag} {shown(mask_password(value))}: give a base URL without ?query or #fragment")
    _check_host(parts.hostname, value, flag)
    return value.rstrip("/")


def _check_host(host: str, value: str, flag: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        host.encode("idna")
    except UnicodeError:
        raise UsageError(f"{flag} {shown(mask_password(value))} has an invalid host name") from None


def dsn(value: str, flag: str = "--dsn / DERIBIT_TS_DSN") -> str:
    """A PostgreSQL connection string (URL or key=value) that libpq can parse. Its password is remembered as a
    secret first, so no message (ours or psycopg's) can echo it."""
    value = text(value, flag, max_chars=DSN_MAX_CHARS)
    from psycopg.conninfo import conninfo_to_dict

    remember_secrets(value)
    try:
        conninfo_to_dict(value)
    except Exception as exc:  # psycopg.ProgrammingError; its text may quote the string (masked below)
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise UsageError(
            f"{flag} is not a PostgreSQL connection string libpq accepts: {mask_password(reason)} "
            "(e.g. postgresql://user@host:5432/dbname, or key=value pairs)"
        ) from None
    return value
