"""The Deribit REST client every ingest module uses: ccxt underneath, our credit limiter and retries on top.

All methods return plain Python data exactly as Deribit sends it in ``result`` (timestamps in ms).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import random
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support
import certifi

from deribit_ts.exchange import replies
from deribit_ts.exchange.errors import (
    RETRYABLE_CODES,
    TOO_MANY_REQUESTS,
    ExchangeError,
    ExchangeUnavailableError,
    RetriesExhaustedError,
)
from deribit_ts.exchange.limiter import CreditLimiter, method_key

log = logging.getLogger(__name__)

# Deribit allows 32 simultaneous connections per IP (docs/deribit.md, Transport).
DEFAULT_MAX_IN_FLIGHT = 32
CHART_COLUMNS = ("ticks", "open", "high", "low", "close", "volume", "cost")


@dataclass
class Tally:
    """HTTP requests and retries of one unit of work (e.g. one window of a backfill task)."""

    requests: int = 0
    retries: int = 0


# The tally of the work the current asyncio task is doing: the ingest engine sets one per window, so the run
# log can say per task how many requests and retries it took, although every task shares this client.
current_tally: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("deribit_ts_tally", default=None)


# The largest reply read (after decompression). Deribit's largest replies (an instrument list with the expired
# instruments, a 5,000-candle chart, a 1,000-trade page) are a few MB at most; a reply beyond the cap is refused
# while it is read, never held in memory whole (parsed, a 40 MB chart costs a gigabyte).
DEFAULT_MAX_REPLY_MB = 32


class ReplyTooLargeError(Exception):
    """A reply grew beyond the cap while it was read."""

    def __init__(self, limit: int, declared: int | None = None):
        self.limit = limit
        self.declared = declared
        size = f"{declared:,} bytes" if declared is not None else "more"
        super().__init__(f"a reply of {size}, beyond the cap of {limit:,} bytes (DERIBIT_TS_MAX_REPLY_MB)")


class _CappedResponse(aiohttp.ClientResponse):
    """aiohttp's response, read at most `max_bytes` far: ccxt reads every body through read() (via text())."""

    max_bytes = DEFAULT_MAX_REPLY_MB * 2**20

    async def read(self) -> bytes:
        if self._body is None:
            declared = self.content_length
            if declared is not None and declared > self.max_bytes:
                self.close()
                raise ReplyTooLargeError(self.max_bytes, declared)
            body = bytearray()
            try:
                while chunk := await self.content.read(2**16):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ReplyTooLargeError(self.max_bytes)
            except BaseException:
                self.close()
                raise
            self._body = bytes(body)
        return await super().read()


class NonFiniteNumber(Exception):  # not a ValueError: ccxt's parse_json would swallow that and return None
    """A reply whose JSON holds NaN, Infinity or a number beyond a double (1e400)."""

    def __init__(self, token: str):
        self.token = token
        super().__init__(token)


def _refuse_non_finite(token: str) -> float:
    raise NonFiniteNumber(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise NonFiniteNumber(token[:40])
    return value


def _parse_json(body: str) -> Any:
    """orjson (fast), which refuses NaN and Infinity like JSON does; when it refuses, Python's parser tells a body
    with a non-finite number (raised as NonFiniteNumber: Deribit answered, with a value we refuse) from one that is
    not JSON (ValueError: truncated or not an API reply)."""
    try:
        return _orjson_loads(body)
    except ValueError:
        return json.loads(body, parse_constant=_refuse_non_finite, parse_float=_finite_float)


try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - ccxt installs orjson; without it Python's parser does both jobs
    _orjson_loads = json.loads


class _ErrorReply(Exception):
    """Deribit answered with a JSON-RPC ``error`` object."""

    def __init__(self, http_status: int, error: dict[str, Any]):
        code = error.get("code")
        self.http_status = http_status
        self.code = int(code) if isinstance(code, int | str) and str(code).lstrip("-").isdigit() else None
        self.message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"HTTP {http_status}, Deribit error {self.code} {self.message}")


class _MalformedReply(Exception):
    """The reply was not a Deribit JSON-RPC envelope: truncated JSON, an HTML error page, an empty body."""

    def __init__(self, http_status: int, reason: str, body: str | None):
        self.http_status = http_status
        text = (body or "").strip()
        self.looks_truncated = http_status == 200 and text[:1] in ("{", "[")
        snippet = " ".join(text[:80].split()) or "empty body"
        super().__init__(f"HTTP {http_status} {reason or ''}".rstrip() + f", not a Deribit API reply ({snippet})")

    @property
    def retryable(self) -> bool:
        return self.http_status == 429 or self.http_status >= 500 or self.looks_truncated


class _RawDeribit(ccxt.async_support.deribit):
    """ccxt's deribit adapter, raising Deribit's own error envelope instead of ccxt's exception classes.

    Why override ``handle_errors`` rather than parse ``str(exc)`` of ccxt's exceptions: ccxt formats its
    messages as "deribit <raw body>", a detail it may change at any time, and it maps several retryable codes
    (10066, 13028, 13888) to the generic ExchangeError. Here we get the parsed body and the HTTP status
    directly, so the code, message and ``data.reason`` reach us intact. This hook runs for every reply, so
    it also rejects a 200 reply whose body is not a complete envelope (ccxt would hand back the raw text)
    and counts the bytes received.

    The count goes straight to the stats it belongs to (`count_bytes`): one shared counter read before and after
    a request would also count every reply that arrived meanwhile for the requests running concurrently with it
    (32 at a time, each counted up to 32 times over).
    """

    on_json_response = staticmethod(_parse_json)

    def count_bytes(self, size: int) -> None:
        """Called with the size of every reply body (replaced by the owning DeribitClient)."""

    def handle_errors(self, httpCode, reason, url, method, headers, body, response, requestHeaders, requestBody):
        if body:
            self.count_bytes(len(body.encode("utf-8", "replace")))
        if isinstance(response, dict):
            error = response.get("error")
            if isinstance(error, dict):
                raise _ErrorReply(httpCode, error)
            if "result" in response:
                return None
        raise _MalformedReply(httpCode, reason, body)


@dataclass
class _Failure:
    """One retryable failure, as counted in the stats."""

    kind: str  # Deribit code as a string, "http_503", "timeout", "connection", "transport", "malformed"
    detail: str
    throttled: bool = False

    @property
    def answered(self) -> bool:
        """Deribit itself answered (with an error code): the exchange is reachable."""
        return self.kind.lstrip("-").isdigit()


@dataclass
class ClientStats:
    """Counters for the run log."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # failed attempts by Deribit code or failure kind
    throttled: int = 0  # 10028 / HTTP 429 replies seen
    bytes_received: int = 0
    limiter_wait_s: float = 0.0  # summed over all requests (they wait concurrently)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "errors": dict(self.errors),
            "throttled": self.throttled,
            "bytes_received": self.bytes_received,
            "limiter_wait_s": round(self.limiter_wait_s, 3),
        }


def _base_url(api_url: str) -> str:
    """ccxt appends ``/api/v2/public/<method>`` itself; accept a URL that already carries ``/api/v2``."""
    url = api_url.rstrip("/")
    return url.removesuffix("/api/v2").rstrip("/")


def _clean_params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (params or {}).items() if value is not None}


class DeribitClient:
    """Async Deribit REST client. Use as ``async with DeribitClient(url) as client:``.

    One instance per process: it owns the credit limiter that keeps the whole process inside Deribit's
    allowance, however many tasks call it concurrently.
    """

    def __init__(
        self,
        api_url: str,
        *,
        limiter: CreditLimiter | None = None,
        timeout_s: float = 30,
        max_retries: int = 8,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        backoff_base_s: float = 0.25,
        backoff_cap_s: float = 10.0,
        max_reply_bytes: int | None = None,
    ):
        self.api_url = _base_url(api_url)
        self.limiter = limiter if limiter is not None else CreditLimiter.from_env()
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.stats = ClientStats()
        self._max_in_flight = max_in_flight
        if max_reply_bytes is None:
            from deribit_ts.config import MAX_REPLY_MB

            max_reply_bytes = MAX_REPLY_MB.from_env() * 2**20
        self.max_reply_bytes = max_reply_bytes
        # Requests hold a slot from before the limiter grants credits until the reply is read. Taking the slot
        # first means a granted request is sent at once instead of queueing behind a busy connection pool,
        # which would bunch requests up on the server's side of the bucket.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._random = random.Random()
        self._last_success_at = -math.inf  # loop time of the latest reply that carried a result
        self._session: aiohttp.ClientSession | None = None
        # 'session': None tells ccxt the session is ours (created lazily inside the event loop, with a
        # connection pool as large as our in-flight limit), and ccxt's own throttler stays off: the
        # CreditLimiter models Deribit's real costs, ccxt's does not (every method costs 1 there).
        self._exchange = _RawDeribit(
            {
                "urls": {"api": {"rest": self.api_url}},
                "enableRateLimit": False,
                "timeout": int(timeout_s * 1000),
                "session": None,
            }
        )
        self._exchange.timeout_on_exit = 0  # ccxt sleeps this long in close() for the sessions it owns
        self._exchange.count_bytes = self._count_bytes  # type: ignore[method-assign]

    async def __aenter__(self) -> DeribitClient:
        self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_in_flight, ssl=ssl.create_default_context(cafile=certifi.where())
            )
            capped = type("CappedResponse", (_CappedResponse,), {"max_bytes": self.max_reply_bytes})
            self._session = aiohttp.ClientSession(connector=connector, response_class=capped)
            self._exchange.session = self._session

    async def close(self) -> None:
        await self._exchange.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ----------------------------------------------------------------------------------------------------
    # Generic call with limiter and retries

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call ``public/<method>`` and return its ``result``; retry what retrying can fix."""
        name = method_key(method)
        params = _clean_params(params)
        endpoint = self._endpoint(name)
        self._open()
        started = asyncio.get_running_loop().time()
        failure: _Failure | None = None
        for attempt in range(self.max_retries + 1):
            tally = current_tally.get()
            if attempt:
                self.stats.retries += 1
                if tally is not None:
                    tally.retries += 1
                await asyncio.sleep(self._backoff_s(attempt))
            if tally is not None:
                tally.requests += 1
            try:
                return await self._attempt(name, endpoint, params)
            except ReplyTooLargeError as exc:
                self.stats.errors["too_large"] += 1
                raise replies.BadReplyError(f"public/{name}", params, str(exc)) from None
            except NonFiniteNumber as exc:
                self.stats.errors["bad_reply"] += 1
                raise replies.BadReplyError(f"public/{name}", params, f"{exc.token}: not a finite number") from None
            except (_ErrorReply, _MalformedReply, ccxt.NetworkError, ccxt.ExchangeError) as exc:
                failure = self._classify(exc, name, params)
            self._record(failure, name, attempt, final=attempt == self.max_retries)
        assert failure is not None
        attempts = self.max_retries + 1
        if failure.answered or self._last_success_at > started:
            # The exchange is there (it answered this call, or others meanwhile): only this call failed.
            code = int(failure.kind) if failure.answered else None
            raise RetriesExhaustedError(code, failure.detail, f"public/{name}", params, attempts)
        raise ExchangeUnavailableError(self.api_url, failure.detail, method=f"public/{name}", attempts=attempts)

    async def _attempt(self, name: str, endpoint: Any, params: dict[str, Any]) -> Any:
        async with self._in_flight:
            self.stats.limiter_wait_s += await self.limiter.acquire(name)
            self.stats.requests += 1
            try:
                envelope = await endpoint(dict(params))
            finally:
                self.limiter.request_done(name)
        self._last_success_at = asyncio.get_running_loop().time()
        try:
            replies.check(name, params, envelope["result"])
        except replies.BadReplyError:
            self.stats.errors["bad_reply"] += 1
            raise
        return envelope["result"]

    def _count_bytes(self, size: int) -> None:
        self.stats.bytes_received += size

    def _endpoint(self, name: str) -> Any:
        """ccxt's implicit method for ``public/<name>``; a raw request for methods ccxt does not list."""
        implicit = getattr(self._exchange, f"public_get_{name}", None)
        if implicit is not None:
            return implicit

        async def raw_request(params: dict[str, Any]) -> Any:
            return await self._exchange.request(name, ["public"], "GET", params)

        return raw_request

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with full jitter: concurrent retries spread out instead of stampeding."""
        return self._random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))

    def _classify(self, exc: Exception, name: str, params: dict[str, Any]) -> _Failure:
        """Turn a failed attempt into a retryable _Failure, or raise what retrying cannot fix."""
        if isinstance(exc, _ErrorReply):
            detail = f"Deribit error {exc.code} {exc.message}"
            if exc.code in RETRYABLE_CODES:
                return _Failure(str(exc.code), detail, throttled=exc.code == TOO_MANY_REQUESTS)
            if exc.http_status == 429:  # an error code we don't know, but the status says "slow down"
                return _Failure(str(exc.code), detail, throttled=True)
            raise ExchangeError(exc.code, exc.message, exc.data, f"public/{name}", params) from None
        if isinstance(exc, _MalformedReply):
            if exc.retryable:
                kind = "malformed" if exc.looks_truncated else f"http_{exc.http_status}"
                return _Failure(kind, str(exc), throttled=exc.http_status == 429)
            # A non-Deribit answer that retrying won't change (e.g. a 404 page): the URL is wrong.
            raise ExchangeUnavailableError(self.api_url, str(exc), method=f"public/{name}") from None
        if isinstance(exc, ccxt.RequestTimeout):
            return _Failure("timeout", f"no reply within {self._exchange.timeout / 1000:g} s")
        if isinstance(exc, ccxt.NetworkError) or isinstance(exc.__cause__, aiohttp.ClientError):
            cause = exc.__cause__ or exc
            return _Failure("connection" if isinstance(exc, ccxt.NetworkError) else "transport", str(cause))
        raise exc

    def _record(self, failure: _Failure, name: str, attempt: int, *, final: bool) -> None:
        self.stats.errors[failure.kind] += 1
        if failure.throttled:
            self.stats.throttled += 1
            self.limiter.penalize(name)
            log.warning("public/%s throttled by the exchange (%s); slowing down", name, failure.detail)
        next_step = "giving up" if final else "retrying"
        log.info("public/%s attempt %d failed (%s); %s", name, attempt + 1, failure.detail, next_step)

    # ----------------------------------------------------------------------------------------------------
    # Typed wrappers, one per endpoint the ingest modules use

    async def get_instruments(
        self, currency: str | None = None, kind: str | None = None, expired: bool = False
    ) -> list[dict]:
        params = {"currency": currency, "kind": kind, "expired": True if expired else None}
        return await self.call("get_instruments", params)

    async def get_instrument(self, instrument_name: str) -> dict:
        return await self.call("get_instrument", {"instrument_name": instrument_name})

    async def get_currencies(self) -> list[dict]:
        return await self.call("get_currencies")

    async def get_chart(self, instrument_name: str, start_ms: int, end_ms: int, resolution: str = "1") -> dict:
        """TradingView chart data; a ``no_data`` reply comes back with every column present and empty."""
        result = await self.call(
            "get_tradingview_chart_data",
            {
                "instrument_name": instrument_name,
                "start_timestamp": int(start_ms),
                "end_timestamp": int(end_ms),
                "resolution": str(resolution),
            },
        )
        for column in CHART_COLUMNS:
            if result.get(column) is None:
                result[column] = []
        return result

    async def get_funding_rate_history(self, instrument_name: str, start_ms: int, end_ms: int) -> list[dict]:
        return await self.call(
            "get_funding_rate_history",
            {
                "instrument_name": instrument_name,
                "start_timestamp": int(start_ms),
                "end_timestamp": int(end_ms),
            },
        )

    async def get_index_chart_data(self, index_name: str, range_: str) -> list[list]:
        return await self.call("get_index_chart_data", {"index_name": index_name, "range": range_})

    async def get_index_price_names(self) -> list:
        return await self.call("get_index_price_names")

    async def get_index_price(self, index_name: str) -> dict:
        return await self.call("get_index_price", {"index_name": index_name})

    async def ticker(self, instrument_name: str) -> dict:
        return await self.call("ticker", {"instrument_name": instrument_name})

    async def get_book_summary_by_currency(self, currency: str, kind: str | None = None) -> list[dict]:
        return await self.call("get_book_summary_by_currency", {"currency": currency, "kind": kind})

    async def get_time(self) -> int:
        return int(await self.call("get_time"))
