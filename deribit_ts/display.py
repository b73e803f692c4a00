"""How text from outside (the exchange's names and messages, a user's input) is shown: escaped, and cut short.

Names come from the exchange, which is untrusted: an instrument called "BTC\\x1b]0;pwned\\x07" or one holding "\\r"
or a newline would rewrite the terminal or forge a line if printed raw. ``printable`` is the one escaping function:
every table cell, log record, progress line and error line that can hold such text goes through it. A leaf
module (it imports nothing of the project).
"""

from __future__ import annotations

import re

SHOWN_CHARS = 40  # how much of a bad value an error line echoes

# C0 controls (newline, tab and carriage return included), DEL, C1 controls, and the Unicode controls that reorder
# or hide what follows (bidirectional overrides and isolates, zero-width marks, line and paragraph separators).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`value` as text with every control character escaped (\\x1b, \\r, \\n, \\u202e): one line, inert on a
    terminal. None shows as an empty string."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _UNPRINTABLE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """A multi-line text (a traceback) with each line escaped and its own line breaks kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


def shown(value: object) -> str:
    """A value as an error line quotes it: repr'd, cut to SHOWN_CHARS, with its length when cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text):,} characters)"
