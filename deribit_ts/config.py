"""Effective settings: flags win over ``DERIBIT_TS_*`` environment variables, which win over defaults."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_URL = "https://www.deribit.com"
DEFAULT_WORKERS = 16  # concurrent backfill tasks per process (DERIBIT_TS_WORKERS)
DEFAULT_MAX_RETRIES = 8  # attempts after the first, per exchange request (DERIBIT_TS_MAX_RETRIES)


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """A whole-number setting from the environment, refused in one line when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        from deribit_ts.errors import UserError

        raise UserError(f"{name}={raw!r} is not a whole number >= {minimum}: fix or unset it")
    return value


def default_home() -> Path:
    """Where the embedded cluster, its password and the private PostgreSQL prefix live."""
    env = os.environ.get("DERIBIT_TS_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "deribit-ts"


@dataclass(frozen=True)
class Settings:
    dsn: str | None = None
    api_url: str = DEFAULT_API_URL
    home: Path = field(default_factory=default_home)

    @classmethod
    def from_env(cls, dsn: str | None = None, api_url: str | None = None, home: Path | None = None) -> Settings:
        return cls(
            dsn=dsn or os.environ.get("DERIBIT_TS_DSN") or None,
            api_url=(api_url or os.environ.get("DERIBIT_TS_API_URL") or DEFAULT_API_URL).rstrip("/"),
            home=home or default_home(),
        )


_URL_PASSWORD = re.compile(r"(://[^:/@]+:)([^@]*)(@)")
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_password(dsn: str | None) -> str | None:
    """Hide the password of a URL-style or key=value DSN so it can be printed or logged."""
    if not dsn:
        return dsn
    return _KV_PASSWORD.sub(r"\1****", _URL_PASSWORD.sub(r"\1****\3", dsn))
