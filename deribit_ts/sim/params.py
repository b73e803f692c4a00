"""Reading request parameters the way Deribit validates them (query strings arrive as text, JSON bodies typed)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from deribit_ts.sim.errors import invalid_params


class Params:
    def __init__(self, raw: Mapping) -> None:
        self.raw = raw

    def _get(self, name: str):
        value = self.raw.get(name)
        return None if value is None or value == "" else value

    def text(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        choices: tuple[str, ...] | None = None,
        reason: str = "invalid value",
    ) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                raise invalid_params("value is required", name)
            return default
        value = str(value)
        if choices is not None and value not in choices:
            raise invalid_params(reason, name)
        return value

    def integer(self, name: str, default: int | None = None, *, required: bool = False) -> int | None:
        value = self._get(name)
        if value is None:
            if required:
                raise invalid_params("value is required", name)
            return default
        number = _as_integer(value)
        if number is None:
            raise invalid_params("must be integer", name)
        if not _INT64_MIN <= number <= _INT64_MAX:  # what a 64-bit server accepts; keeps numpy arithmetic exact
            raise invalid_params("out of range", name)
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise invalid_params("must be boolean", name)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _as_integer(value) -> int | None:
    """An integer from a JSON number or query text ("5", "5.0", 5.0), or None if it is not one (bool, 5.5, nan)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(as_float) or not as_float.is_integer():
        return None
    return int(as_float)
