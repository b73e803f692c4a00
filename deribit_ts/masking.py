"""The one place secrets are hidden: ``mask_password`` is applied to every DSN or URL we display, to every error
line main() prints and to every log record (``install_log_masking``), including text that comes back from
libraries (psycopg quotes the connection string it could not parse).

Log records are also escaped here (deribit_ts.display.printable): a name from the exchange never writes a control
character into a log. Imports nothing of the project but display, so settings, input checks and time parsing can
all use it.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse

from deribit_ts.display import printable, printable_lines

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
        record.msg, record.args = printable(mask_password(message)), ()
        return record

    masked_record.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)


class MaskingFormatter(logging.Formatter):
    """A formatter whose whole output (tracebacks included) goes through mask_password."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(mask_password(super().format(record)) or "")
