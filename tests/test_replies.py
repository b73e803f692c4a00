"""Every reply of every dataset is checked before anything is written: the real ccxt client against a hostile
stand-in exchange (tests/hostile.py) that answers Deribit's own sample replies with one value made bad.

A bad reply fails the call with BadReplyError (the request, the exchange's value, where it was), at once and without
retries, and never as "cannot reach the exchange"; a reply beyond the size cap is refused while it is read.
"""

from __future__ import annotations

import asyncio
import copy
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hostile import envelope, hostile_exchange

from deribit_ts.exchange import replies
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import ExchangeUnavailableError, UnexpectedReplyError
from deribit_ts.exchange.limiter import CreditLimiter

SAMPLES = Path(__file__).parent / "data" / "deribit_samples"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())["result"]


# method -> (the request's parameters, a good reply from Deribit's documentation, where a value that may not be null
# is, where a price is). A path is a list of keys/indexes into the result.
DATASETS: dict[str, tuple[dict, Any, list, list]] = {
    "get_tradingview_chart_data": (
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": 1554373800000, "end_timestamp": 1554376800000},
        sample("get_tradingview_chart_data"),
        ["close", 1],
        ["high", 0],
    ),
    "get_funding_rate_history": (
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": 1569888000000, "end_timestamp": 1569902400000},
        sample("get_funding_rate_history"),
        [1, "interest_1h"],
        [2, "index_price"],
    ),
    "get_index_chart_data": ({"index_name": "btc_usd", "range": "1d"}, sample("get_index_chart_data"), [3, 0], [3, 1]),
    "get_volatility_index_data": (
        {"currency": "BTC", "start_timestamp": 1598019300000, "end_timestamp": 1598019420000, "resolution": "60"},
        sample("get_volatility_index_data"),
        ["data", 1, 0],
        ["data", 0, 2],
    ),
    "get_delivery_prices": (
        {"index_name": "btc_usd", "offset": 0, "count": 1000},
        sample("get_delivery_prices"),
        ["records_total"],
        ["data", 1, "delivery_price"],
    ),
    "get_instruments": ({"currency": "BTC"}, sample("get_instruments"), [0, "instrument_name"], [0, "tick_size"]),
    "get_instrument": (
        {"instrument_name": "ETH-30MAR26-2000-C"},
        sample("get_instrument"),
        ["instrument_name"],
        ["strike"],
    ),
    "ticker": (
        {"instrument_name": "BTC-27SEP24-40000-C"},
        sample("ccxt_comment_ticker_option_greeks"),
        ["timestamp"],
        ["underlying_price"],
    ),
    "get_book_summary_by_currency": (
        {"currency": "BTC", "kind": "option"},
        sample("get_book_summary_by_currency"),
        [0, "mark_price"],
        [0, "underlying_price"],
    ),
    "get_last_trades_by_currency_and_time": (
        {"currency": "BTC", "kind": "option", "start_timestamp": 1770984000000, "end_timestamp": 1770985000000},
        sample("get_last_trades_by_currency_and_time"),
        ["trades", 0, "timestamp"],
        ["trades", 0, "price"],
    ),
    "get_time": ({}, sample("get_time"), [], []),
}

NAN, INF = float("nan"), float("inf")
# kind -> (value, which path it goes to: the value that may not be null, or the price)
BAD = {
    "a string": ("70000.5", "price"),
    "an object": ({"price": 1}, "price"),
    "null": (None, "required"),
    "a list": ([1, 2], "price"),
    "NaN": (NAN, "price"),
    "Infinity": (INF, "price"),
    "-Infinity": (-INF, "price"),
    "1e308": (1e308, "price"),
    "negative": (-5.0, "price"),
}


def with_value(result: Any, path: list, value: Any) -> Any:
    if not path:
        return value
    result = copy.deepcopy(result)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


def calls(url: str, requests: list[tuple[str, dict]], before=None, **client_options) -> list[tuple[Any, int]]:
    """Each request on one client (constructing ccxt's is slow): its result or the exception it raised, and how
    many HTTP requests it took. `before(i)` runs before the i-th request (to change what the stand-in answers)."""

    async def main():
        limiter = CreditLimiter(enabled=False)
        client = DeribitClient(url, limiter=limiter, max_retries=3, backoff_base_s=0.01, **client_options)
        out = []
        async with client:
            for i, (method, params) in enumerate(requests):
                if before is not None:
                    before(i)
                sent = client.stats.requests
                try:
                    result = await client.call(method, params)
                except Exception as exc:  # returned, so the test can look at it
                    result = exc
                out.append((result, client.stats.requests - sent))
        return out

    return asyncio.run(main())


def call(url: str, method: str, params: dict, **client_options) -> tuple[Any, int]:
    return calls(url, [(method, params)], **client_options)[0]


@pytest.fixture(scope="module")
def stand_in():
    """Answers each method with what the test put in `answers[method]` (a result, or raw bytes)."""
    answers: dict[str, Any] = {}

    def answer(method: str, params: dict, reply: Any) -> Any:
        body = answers[method]
        return body if isinstance(body, bytes) else envelope(body)

    with hostile_exchange(answer) as (url, stats):
        yield url, answers, stats


@pytest.mark.parametrize("method", sorted(DATASETS))
def test_the_documented_reply_passes_and_each_bad_value_fails_the_call_with_the_exchanges_words(stand_in, method):
    url, answers, _ = stand_in
    params, good, required, price = DATASETS[method]
    kinds = sorted(BAD)

    def serve(i: int) -> None:
        if i == 0:
            answers[method] = good
            return
        value, where = BAD[kinds[i - 1]]
        if method == "get_time" and kinds[i - 1] == "negative":
            value = -5  # a time before 1970
        answers[method] = with_value(good, required if where == "required" or not price else price, value)

    results = calls(url, [(method, params)] * (1 + len(kinds)), serve)
    assert results[0] == (good, 1)
    shown = {"a string": "'70000.5'", "NaN": "nan", "Infinity": "inf", "1e308": "1e+308", "null": "null"}
    for kind, (error, requests) in zip(kinds, results[1:], strict=True):
        assert isinstance(error, replies.BadReplyError), (kind, error)
        assert isinstance(error, UnexpectedReplyError) and not isinstance(error, ExchangeUnavailableError)
        text = str(error)
        assert f"public/{method}(" in text and "refused, nothing of it stored" in text, text
        for name in ("instrument_name", "currency", "index_name"):
            if name in params:
                assert f"{name}={params[name]}" in text, text  # which instrument (or currency, index)
        if kind in shown:
            assert shown[kind] in text.lower(), (kind, text)  # the exchange's words
        assert "\n" not in text
        assert requests == 1, "a bad reply is the same on every try: not retried"


def test_a_whole_reply_of_the_wrong_kind_is_refused(stand_in):
    url, answers, _ = stand_in
    cases = [
        (method, params, wrong)
        for method, (params, good, _, _) in DATASETS.items()
        for wrong in ("text", 42, None, [[]], {"unexpected": True})
        if type(wrong) is not type(good)
    ]

    def serve(i: int) -> None:
        answers[cases[i][0]] = cases[i][2]

    results = calls(url, [(method, params) for method, params, _ in cases], serve)
    for (method, _, wrong), (error, _) in zip(cases, results, strict=True):
        assert isinstance(error, replies.BadReplyError), (method, wrong, error)


def test_non_finite_numbers_in_the_raw_json_are_refused_not_taken_for_an_outage(stand_in):
    """NaN, Infinity and 1e400 are not JSON: ccxt's parser refuses them, which used to make a truncated-looking body
    that was retried until the client said the exchange could not be reached."""
    url, answers, _ = stand_in
    good = json.dumps(envelope(sample("get_tradingview_chart_data")))
    high = str(sample("get_tradingview_chart_data")["high"][0])
    params = DATASETS["get_tradingview_chart_data"][0]
    for token in ("NaN", "Infinity", "-Infinity", "1e400"):
        answers["get_tradingview_chart_data"] = good.replace(high, token, 1).encode()
        error, requests = call(url, "get_tradingview_chart_data", params)
        assert isinstance(error, replies.BadReplyError), error
        assert token in str(error) and "cannot reach" not in str(error), error
        assert requests == 1


def test_a_reply_beyond_the_cap_is_refused_while_it_is_read():
    """A 40 MB chart reply, streamed without a Content-Length: refused after the cap, the rest never read."""
    size = 40 * 2**20
    chunk = b"1234567.5," * 6554  # 64 kB of numbers

    def answer(method, params, reply):
        def body():
            yield b'{"jsonrpc":"2.0","result":{"status":"ok","ticks":['
            for _ in range(size // len(chunk)):
                yield chunk
            yield b"1]}}"

        return body()

    params = DATASETS["get_tradingview_chart_data"][0]
    with hostile_exchange(answer) as (url, stats):
        tracemalloc.start()
        try:
            error, requests = call(url, "get_tradingview_chart_data", params, max_reply_bytes=2**20)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert isinstance(error, replies.BadReplyError), error
    assert "beyond the cap of 1,048,576 bytes" in str(error) and "BTC-PERPETUAL" in str(error), error
    assert requests == 1
    assert stats.sent_bytes < size / 2, "the client stopped reading at the cap"
    assert peak < 16 * 2**20, f"{peak:,} bytes held while refusing a 40 MB reply"


def test_a_declared_length_beyond_the_cap_is_refused_before_reading():
    body = json.dumps(envelope({"status": "ok", "ticks": list(range(200_000))})).encode()
    with hostile_exchange(lambda method, params, reply: body) as (url, _):
        error, _ = call(url, "get_time", {}, max_reply_bytes=100_000)
    assert isinstance(error, replies.BadReplyError) and f"a reply of {len(body):,} bytes" in str(error), error


def test_the_cap_is_a_documented_setting(monkeypatch):
    monkeypatch.setenv("DERIBIT_TS_MAX_REPLY_MB", "3")
    assert DeribitClient("http://127.0.0.1:1").max_reply_bytes == 3 * 2**20
