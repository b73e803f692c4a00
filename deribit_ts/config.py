"""Effective settings: flags win over ``DERIBIT_TS_*`` environment variables, which win over defaults.

(Secrets are hidden by deribit_ts.masking; its names are importable from here too, as they always were.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from deribit_ts import validate
from deribit_ts.masking import MaskingFormatter, install_log_masking, mask_password, remember_secrets

__all__ = ["MaskingFormatter", "install_log_masking", "mask_password", "remember_secrets"]  # (re-exported)

DEFAULT_API_URL = "https://www.deribit.com"
DEFAULT_HISTORY_URL = "https://history.deribit.com"  # every instrument's trades, expired ones included


@dataclass(frozen=True)
class IntSetting:
    """A whole-number setting: one parser for its flag and its environment variable."""

    env: str
    default: int
    minimum: int
    maximum: int

    def parse(self, raw: object, name: str | None = None) -> int:
        return validate.whole_number(raw, name or self.env, minimum=self.minimum, maximum=self.maximum)

    def from_env(self) -> int:
        raw = validate.env(self.env)
        return self.default if raw is None else self.parse(raw)


WORKERS = IntSetting("DERIBIT_TS_WORKERS", 16, 1, 256)  # concurrent backfill tasks per process
MAX_RETRIES = IntSetting("DERIBIT_TS_MAX_RETRIES", 8, 0, 100)  # attempts after the first, per exchange request
# The largest exchange reply read, in MiB (deribit_ts/exchange/client.py): beyond it a reply is refused as it is read.
MAX_REPLY_MB = IntSetting("DERIBIT_TS_MAX_REPLY_MB", 32, 1, 1024)
DEFAULT_WORKERS = WORKERS.default
DEFAULT_MAX_RETRIES = MAX_RETRIES.default
_INT_SETTINGS = {s.env: s for s in (WORKERS, MAX_RETRIES, MAX_REPLY_MB)}


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    """A whole-number setting from the environment, refused in one line when it is not one (a setting declared
    above is parsed by its IntSetting, whatever bounds the caller passes)."""
    if name in _INT_SETTINGS:
        return _INT_SETTINGS[name].from_env()
    return IntSetting(name, default, minimum, maximum).from_env()


def default_home() -> Path:
    """Where the embedded cluster, its password and the private PostgreSQL prefix live."""
    env = validate.env("DERIBIT_TS_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg and xdg.strip() else Path.home() / ".local" / "share"
    return base / "deribit-ts"


@dataclass(frozen=True)
class Settings:
    dsn: str | None = None
    api_url: str = DEFAULT_API_URL
    home: Path = field(default_factory=default_home)
    history_url: str = DEFAULT_HISTORY_URL
    api_url_set: bool = False  # --api-url or DERIBIT_TS_API_URL given (not the default)

    @classmethod
    def from_env(
        cls,
        dsn: str | None = None,
        api_url: str | None = None,
        home: Path | None = None,
        history_url: str | None = None,
    ) -> Settings:
        """Flags given (not None) win over the environment; each is checked (a blank one is refused). The history
        host: --history-url, else DERIBIT_TS_HISTORY_URL, else the API URL when one is set (a simulator or any
        single stand-in serves both), else Deribit's history host."""
        dsn = validate.dsn(dsn, "--dsn") if dsn is not None else _env_checked("DERIBIT_TS_DSN", validate.dsn)
        env_api = None if api_url is not None else _env_checked("DERIBIT_TS_API_URL", validate.api_url)
        api_url_set = api_url is not None or env_api is not None
        api_url = validate.api_url(api_url, "--api-url") if api_url is not None else env_api or DEFAULT_API_URL
        if history_url is not None:
            history = validate.api_url(history_url, "--history-url")
        else:
            history = _env_checked("DERIBIT_TS_HISTORY_URL", validate.api_url) or (
                api_url if api_url_set else DEFAULT_HISTORY_URL
            )
        return cls(dsn=dsn, api_url=api_url, home=home or default_home(), history_url=history, api_url_set=api_url_set)


def _env_checked(name: str, check) -> str | None:
    raw = validate.env(name)
    return None if raw is None else check(raw, name)
