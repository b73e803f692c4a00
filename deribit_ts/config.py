"""Effective settings: flags win over ``DERIBIT_TS_*`` environment variables, which win over defaults.

Also the one place secrets are hidden: ``mask_password`` is applied to every DSN or URL we display, to every
error line main() prints and to every log record (``install_log_masking``), including text that comes back
from libraries (psycopg quotes the connection string it could not parse).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from deribit_ts import validate

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


# ---------------------------------------------------------------------------------------------------------
# Secrets

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_MIN_SECRET_CHARS = 3  # shorter ones would mask common letters; the patterns below still hide them in DSNs/URLs
_MASK = "****"
# scheme://user:password@host: the password runs to the LAST '@' of the token (an unescaped '@' in a password is
# common). The user part may be empty (postgresql://:pw@host).
# (Every part's length is bounded: unbounded ones make a 100 kB word of "a://a://..." quadratic to scan.)
_URL_PASSWORD = re.compile(r"((?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/@?#'\"]{0,256}:)(\S{0,256})(@)")
_KV_PASSWORD = re.compile(r"(\b(?:password|passwd|pgpassword)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)
_QUOTED_PASSWORD = re.compile(r"""(['"]password['"]\s*:\s*)('[^']*'|"[^"]*"|\S+)""", re.IGNORECASE)


def remember_secrets(text: str | None) -> None:
    """Note the passwords in a DSN or URL, so mask_password also hides them where they appear alone (psycopg's
    'invalid percent-encoded token: "se%ZZcret"' quotes only the password)."""
    if not text:
        return
    found = set()
    for match in _URL_PASSWORD.finditer(text):
        found.add(match.group(2))
    for match in _KV_PASSWORD.finditer(text):
        found.add(match.group(2).strip("'"))
    for secret in list(found):
        try:
            found.add(urllib.parse.unquote(secret, errors="strict"))
        except UnicodeDecodeError:
            pass
    with _SECRETS_LOCK:
        _SECRETS.update(s for s in found if len(s) >= _MIN_SECRET_CHARS and s != _MASK)


def mask_password(text: object) -> str | None:
    """Hide passwords in any text: URL-style and key=value DSNs, URLs with credentials, and every password
    remembered from the settings. None stays None (nothing to show); anything else is shown as str()."""
    if text is None:
        return None
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    text = str(text)
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, _MASK)
    text = _URL_PASSWORD.sub(rf"\1{_MASK}\3", text)
    text = _KV_PASSWORD.sub(rf"\1{_MASK}", text)
    return _QUOTED_PASSWORD.sub(rf"\1'{_MASK}'", text)


def install_log_masking() -> None:
    """Mask every log record's message at creation, whichever handler (stderr, a log file) writes it later."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_secrets", False):
        return

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: show it as it was given
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask_password(message), ()
        return record

    masked_record.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)


class MaskingFormatter(logging.Formatter):
    """A formatter whose whole output (tracebacks included) goes through mask_password."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_password(super().format(record)) or ""
