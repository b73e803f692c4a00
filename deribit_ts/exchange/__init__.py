"""Talking to Deribit: the REST client (ccxt underneath), its credit limiter and its errors."""

from deribit_ts.exchange.client import ClientStats, DeribitClient, Tally, current_tally
from deribit_ts.exchange.errors import (
    RETRYABLE_CODES,
    ExchangeError,
    ExchangeUnavailableError,
    RetriesExhaustedError,
    UnexpectedReplyError,
)
from deribit_ts.exchange.limiter import RATE_LIMIT_SCALE_ENV, CreditLimiter

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
