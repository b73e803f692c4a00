"""Talking to Deribit: the REST client (ccxt underneath), its credit limiter and its errors.

The client's names load on first use: importing this package (as `deribit-ts config` does for the limiter's
defaults) must not import ccxt and aiohttp, a second of CPU on every start of a command that never calls the
exchange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deribit_ts.exchange.errors import (
    RETRYABLE_CODES,
    ExchangeError,
    ExchangeUnavailableError,
    RetriesExhaustedError,
    UnexpectedReplyError,
)
from deribit_ts.exchange.limiter import RATE_LIMIT_SCALE_ENV, CreditLimiter

if TYPE_CHECKING:
    from deribit_ts.exchange.client import ClientStats, DeribitClient, Tally, current_tally

_CLIENT_NAMES = frozenset({"ClientStats", "DeribitClient", "Tally", "current_tally"})

__all__ = [
    "RATE_LIMIT_SCALE_ENV",
    "RETRYABLE_CODES",
    "ClientStats",
    "CreditLimiter",
    "DeribitClient",
    "ExchangeError",
    "ExchangeUnavailableError",
    "RetriesExhaustedError",
    "Tally",
    "UnexpectedReplyError",
    "current_tally",
]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from deribit_ts.exchange import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
