"""Every public REST sample of the real API has a simulator counterpart with the same keys and JSON types.

Samples live in tests/data/deribit_samples (copied from the project's reference material). A sample's keys must all
be present in the simulator's answer (recursively) and each value must have the same JSON type; numbers that ccxt's
capture tooling stringified count as numbers.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import SimHandle, run_in_thread
from deribit_ts.sim.methods import METHODS

SAMPLES = Path(__file__).parent / "data" / "deribit_samples"
# Values the simulator may leave null although the sample shows a value (no trade in 24 h, empty book side...).
# An option's far wing may have no bid: its book summary then has no bid_price and no mid_price (null).
NULLABLE = {
    "price_change",
    "best_bid_price",
    "best_ask_price",
    "high",
    "low",
    "last",
    "last_price",
    "continuation",
    "bid_price",
    "mid_price",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with run_in_thread(sim_config()) as handle:
        yield handle


def call(url: str, method: str, params: dict, request_id: int | None = None) -> tuple[int, dict]:
    """GET with a query string (no id, like ccxt) or POST a JSON-RPC body (with id, like the official examples)."""
    if request_id is None:
        query = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
        req = urllib.request.Request(f"{url}/api/v2/public/{method}?{query}")
    else:
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": f"public/{method}", "params": params})
        req = urllib.request.Request(
            f"{url}/api/v2", data=body.encode(), method="POST", headers={"Content-Type": "application/json"}
        )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _sample_kinds(value) -> set[str]:
    kind = _kind(value)
    if kind == "str":
        try:
            float(value)
            return {"str", "number"}  # ccxt pastes numbers as strings
        except ValueError:
            return {"str"}
    return {kind}


def assert_same_shape(
    sample, got, path: str = "$", ignore: frozenset[str] = frozenset(), empty_ok: frozenset[str] = frozenset()
) -> None:
    """`got` has the sample's keys and JSON types, recursively. A list the sample fills must not come back empty
    (an always-empty answer would otherwise pass) unless its key is in `empty_ok`."""
    if sample is None:
        return
    if got is None and path.rsplit(".", 1)[-1] in NULLABLE:
        return
    assert _kind(got) in _sample_kinds(sample), f"{path}: sample {sample!r} but simulator sent {got!r}"
    if isinstance(sample, dict):
        for key, value in sample.items():
            if key in ignore:
                continue
            assert key in got, f"{path}: key {key!r} missing (simulator keys: {sorted(got)})"
            assert_same_shape(value, got[key], f"{path}.{key}", ignore, empty_ok)
    elif isinstance(sample, list) and sample:
        assert got or path.rsplit(".", 1)[-1] in empty_ok, f"{path}: the sample has items but the simulator sent []"
        for item in got[:50]:
            assert_same_shape(sample[0], item, f"{path}[]", ignore, empty_ok)


def load(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture(scope="module")
def names(sim: SimHandle) -> dict[str, str]:
    """Instruments alive at SIM_NOW that the requests below use."""
    market = sim.market
    alive = market.instruments("BTC") + market.instruments("ETH")
    eth_option = next(i.name for i in alive if i.currency == "ETH" and i.is_option)
    btc_option = next(i.name for i in alive if i.currency == "BTC" and i.is_option)
    btc_future = next(i.name for i in alive if i.kind == "future" and not i.is_perpetual)
    traded = market.trades(btc_option, limit=1, ascending=False) and btc_option
    if not traded:
        options = [i.name for i in alive if i.is_option]
        traded = next(n for n in options if market.trades(n, SIM_NOW_MS - 86_400_000, limit=1))
    return {"eth_option": eth_option, "btc_option": btc_option, "btc_future": btc_future, "traded_option": traded}


H = 3_600_000
CASES = [  # sample file, method, params (names filled in from the fixture), ignored keys
    ("get_book_summary_by_currency.json", "get_book_summary_by_currency", {"currency": "ETH", "kind": "option"}, ()),
    ("get_book_summary_by_instrument.json", "get_book_summary_by_instrument", {"instrument_name": "eth_option"}, ()),
    (
        "ccxt_comment_book_summary_by_currency.json",
        "get_book_summary_by_currency",
        {"currency": "BTC", "kind": "option"},
        (),
    ),
    (
        "ccxt_comment_book_summary_by_currency_options.json",
        "get_book_summary_by_currency",
        {"currency": "BTC", "kind": "option"},
        (),
    ),
    (
        "ccxt_comment_book_summary_by_instrument_option.json",
        "get_book_summary_by_instrument",
        {"instrument_name": "btc_option"},
        (),
    ),
    (
        "ccxt_comment_book_summary_by_instrument_perp.json",
        "get_book_summary_by_instrument",
        {"instrument_name": "BTC-PERPETUAL"},
        (),
    ),
    ("get_currencies.json", "get_currencies", {}, ()),
    ("ccxt_comment_get_currencies.json", "get_currencies", {}, ()),
    ("get_delivery_prices.json", "get_delivery_prices", {"index_name": "btc_usd", "offset": 0, "count": 5}, ()),
    ("get_expirations.json", "get_expirations", {"currency": "BTC", "kind": "any"}, ()),
    (
        "get_funding_chart_data.CONSTRUCTED_from_schema.json",
        "get_funding_chart_data",
        {"instrument_name": "BTC-PERPETUAL", "length": "8h"},
        (),
    ),
    (
        "get_funding_rate_history.json",
        "get_funding_rate_history",
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": SIM_NOW_MS - 5 * H, "end_timestamp": SIM_NOW_MS},
        (),
    ),
    (
        "ccxt_comment_funding_rate_history.json",
        "get_funding_rate_history",
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": SIM_NOW_MS - 5 * H, "end_timestamp": SIM_NOW_MS},
        (),
    ),
    (
        "get_funding_rate_value.json",
        "get_funding_rate_value",
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": SIM_NOW_MS - 8 * H, "end_timestamp": SIM_NOW_MS},
        (),
    ),
    (
        "ccxt_comment_funding_rate_value.json",
        "get_funding_rate_value",
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": SIM_NOW_MS - 8 * H, "end_timestamp": SIM_NOW_MS},
        (),
    ),
    ("get_historical_volatility.json", "get_historical_volatility", {"currency": "BTC"}, ()),
    ("ccxt_comment_historical_volatility.json", "get_historical_volatility", {"currency": "BTC"}, ()),
    ("get_index_chart_data.json", "get_index_chart_data", {"index_name": "btc_usd", "range": "1d"}, ()),
    ("get_index_price.CONSTRUCTED_from_schema.json", "get_index_price", {"index_name": "btc_usd"}, ()),
    ("get_index_price_names.json", "get_index_price_names", {}, ()),
    ("get_supported_index_names.json", "get_supported_index_names", {}, ()),
    ("get_instrument.json", "get_instrument", {"instrument_name": "btc_option"}, ()),
    ("get_instruments.json", "get_instruments", {"currency": "BTC", "kind": "future"}, ()),
    (
        "get_last_settlements_by_instrument.json",
        "get_last_settlements_by_instrument",
        {"instrument_name": "BTC-PERPETUAL", "count": 3},
        (),
    ),
    (
        "get_last_trades_by_currency_and_time.json",
        "get_last_trades_by_currency_and_time",
        {"currency": "BTC", "kind": "option", "start_timestamp": SIM_NOW_MS - 24 * H, "count": 5},
        (),
    ),
    (
        "get_last_trades_by_instrument.json",
        "get_last_trades_by_instrument",
        {"instrument_name": "traded_option", "count": 5},
        (),
    ),
    (
        "get_last_trades_by_instrument_and_time.json",
        "get_last_trades_by_instrument_and_time",
        {"instrument_name": "traded_option", "end_timestamp": SIM_NOW_MS, "count": 5},
        (),
    ),
    (
        "ccxt_comment_last_trades_by_instrument.json",
        "get_last_trades_by_instrument",
        {"instrument_name": "BTC-PERPETUAL"},
        (),
    ),
    (
        "ccxt_fixture_fetchTrades_BTC_USDT.json",
        "get_last_trades_by_instrument",
        {"instrument_name": "BTC-PERPETUAL"},
        (),
    ),
    (
        "get_mark_price_history.json",
        "get_mark_price_history",
        {"instrument_name": "btc_option", "start_timestamp": SIM_NOW_MS - H, "end_timestamp": SIM_NOW_MS},
        (),
    ),
    ("get_order_book.json", "get_order_book", {"instrument_name": "BTC-PERPETUAL", "depth": 5}, ()),
    ("ccxt_comment_order_book.json", "get_order_book", {"instrument_name": "BTC-PERPETUAL", "depth": 5}, ()),
    ("get_time.json", "get_time", {}, ()),
    ("ccxt_comment_get_time.json", "get_time", {}, ()),
    ("status.json", "status", {}, ()),
    ("ccxt_comment_status.json", "status", {}, ("locked",)),  # ccxt shows "false" (string), the spec a bool
    ("test.json", "test", {}, ()),
    (
        "get_tradingview_chart_data.json",
        "get_tradingview_chart_data",
        {
            "instrument_name": "btc_future",
            "start_timestamp": SIM_NOW_MS - 2 * H,
            "end_timestamp": SIM_NOW_MS,
            "resolution": "30",
        },
        (),
    ),
    (
        "ccxt_comment_tradingview_chart_data.json",
        "get_tradingview_chart_data",
        {
            "instrument_name": "BTC-PERPETUAL",
            "start_timestamp": SIM_NOW_MS - H,
            "end_timestamp": SIM_NOW_MS,
            "resolution": "1",
        },
        (),
    ),
    (
        "ccxt_fixture_fetchOHLCV_BTC_USDT_1h.json",
        "get_tradingview_chart_data",
        {
            "instrument_name": "BTC-PERPETUAL",
            "start_timestamp": SIM_NOW_MS - H,
            "end_timestamp": SIM_NOW_MS,
            "resolution": "60",
        },
        (),
    ),
    (
        "vike_fixture_get_tradingview_chart_data_BTC-PERPETUAL_1m.json",
        "get_tradingview_chart_data",
        {
            "instrument_name": "BTC-PERPETUAL",
            "start_timestamp": SIM_NOW_MS - 3 * 60_000,
            "end_timestamp": SIM_NOW_MS,
            "resolution": "1",
        },
        (),
    ),
    (
        "get_volatility_index_data.json",
        "get_volatility_index_data",
        {"currency": "BTC", "start_timestamp": SIM_NOW_MS - H, "end_timestamp": SIM_NOW_MS, "resolution": "60"},
        (),
    ),
    ("ticker.json", "ticker", {"instrument_name": "BTC-PERPETUAL"}, ()),
    ("ccxt_comment_ticker_perp.json", "ticker", {"instrument_name": "BTC-PERPETUAL"}, ()),
    ("ccxt_comment_ticker_option_greeks.json", "ticker", {"instrument_name": "btc_option"}, ()),
    (
        "ccxt_fixture_fetchTicker_BTC_USDT.json",
        "ticker",
        {"instrument_name": "BTC-PERPETUAL"},
        ("volume_notional",),
    ),  # spot-only stat; the simulator has no spot pairs
]


# Lists a sample fills that the simulator may rightly answer empty, per sample, with why.
EMPTY_OK = {
    "get_instrument.json": {"tick_size_steps"},  # the simulator's options have a single tick size (futures: [])
    "status.json": {"locked_currencies"},  # nothing is ever locked in the simulator
}


@pytest.mark.parametrize(("sample", "method", "params", "ignore"), CASES, ids=[c[0] for c in CASES])
def test_response_matches_sample(
    sim: SimHandle, names: dict, sample: str, method: str, params: dict, ignore: tuple
) -> None:
    expected = load(sample)
    params = {k: names.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    status, got = call(sim.url, method, params, expected.get("id"))
    assert status == 200, got
    assert "error" not in got
    if "id" in expected:
        assert got["id"] == expected["id"]
    else:
        assert "id" not in got  # a plain GET carries no id, so the answer has none
    assert_same_shape(expected, got, ignore=frozenset(ignore), empty_ok=frozenset(EMPTY_OK.get(sample, ())))
    assert _kind(got["usIn"]) == _kind(got["usOut"]) == _kind(got["usDiff"]) == "number"
    assert got["testnet"] is False


def test_chart_keys_in_real_order(sim: SimHandle) -> None:
    real = list(load("vike_fixture_get_tradingview_chart_data_BTC-PERPETUAL_1m.json")["result"])
    _, got = call(
        sim.url,
        "get_tradingview_chart_data",
        {
            "instrument_name": "BTC-PERPETUAL",
            "resolution": "1",
            "start_timestamp": SIM_NOW_MS - H,
            "end_timestamp": SIM_NOW_MS,
        },
    )
    assert list(got["result"]) == real


def test_instruments_match_the_2026_shapes(sim: SimHandle) -> None:
    """The live 2026 capture: perpetual, dated future and option objects (inverse ones) have our keys."""
    rows = [
        r
        for r in load("vike_fixture_get_instruments_2026_subset.json")["result"]
        if r["kind"] in ("future", "option") and r.get("settlement_currency") == r["base_currency"]
    ]
    assert rows
    _, got = call(sim.url, "get_instruments", {})
    ours = got["result"]
    for row in rows:
        period = "perpetual" if row["settlement_period"] == "perpetual" else None
        match = next(
            i for i in ours if i["kind"] == row["kind"] and (period is None) == (i["settlement_period"] != "perpetual")
        )
        assert_same_shape(row, match, f"$[{row['instrument_name']}]", empty_ok=frozenset({"tick_size_steps"}))


def test_ccxt_comment_instruments_per_kind(sim: SimHandle) -> None:
    _, got = call(sim.url, "get_instruments", {"currency": "BTC"})
    for row in load("ccxt_comment_get_instruments.json")["result"]:
        match = next(
            i
            for i in got["result"]
            if i["kind"] == row["kind"]
            and (i["settlement_period"] == "perpetual") == (row["settlement_period"] == "perpetual")
        )
        assert_same_shape(row, match)


ERROR_CASES = [
    ("ccxt_comment_error_invalid_params.json", "get_book_summary_by_currency", {"currency": "NOPE"}, 400),
    (
        "captured_error_instrument_not_found.json",
        "get_tradingview_chart_data",
        {"instrument_name": "BTC-1JAN99", "start_timestamp": 0, "end_timestamp": 1, "resolution": "1"},
        400,
    ),
]


@pytest.mark.parametrize(("sample", "method", "params", "http_status"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_matches_sample(sim: SimHandle, sample: str, method: str, params: dict, http_status: int) -> None:
    expected = load(sample)
    status, got = call(sim.url, method, params)
    assert status == http_status
    assert "result" not in got and "id" not in got
    assert got["error"] == expected["error"]
    assert_same_shape(expected, got)


@pytest.mark.parametrize(
    ("method", "params", "code", "reason"),
    [
        ("no_such_method", {}, -32601, None),
        ("ticker", {}, -32602, "value is required"),
        (
            "get_tradingview_chart_data",
            {"instrument_name": "BTC-PERPETUAL", "start_timestamp": 0, "end_timestamp": 1, "resolution": "7"},
            -32602,
            "unsupported resolution",
        ),
        (
            "get_funding_rate_history",
            {"instrument_name": "BTC-PERPETUAL", "start_timestamp": "x", "end_timestamp": 1},
            -32602,
            "must be integer",
        ),
        ("get_book_summary_by_currency", {"currency": "any"}, -32602, "invalid currency"),
        ("test", {"expected_result": "exception"}, 11094, None),
    ],
)
def test_error_codes(sim: SimHandle, method: str, params: dict, code: int, reason: str | None) -> None:
    status, got = call(sim.url, method, params)
    assert status == 400
    assert got["error"]["code"] == code
    if reason is not None:
        assert got["error"]["data"]["reason"] == reason


def test_post_json_rpc_on_method_path_keeps_id(sim: SimHandle) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "public/get_time", "params": {}}).encode()
    req = urllib.request.Request(
        f"{sim.url}/api/v2/public/get_time", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as resp:
        got = json.loads(resp.read())
    assert got["id"] == 7 and got["result"] == SIM_NOW_MS


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"offset": -1}, "offset"),
        ({"offset": -1000, "count": 5}, "offset"),
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_delivery_prices_reject_bad_paging(sim: SimHandle, params: dict, param: str) -> None:
    status, got = call(sim.url, "get_delivery_prices", {"index_name": "btc_usd", **params})
    assert status == 400 and "result" not in got
    assert got["error"]["code"] == -32602 and got["error"]["data"]["param"] == param


def test_delivery_prices_never_serve_the_future(sim: SimHandle) -> None:
    """Every page, from every offset, holds only deliveries (08:00 UTC) at or before the simulated now."""
    _, newest = call(sim.url, "get_delivery_prices", {"index_name": "btc_usd", "count": 1})
    assert newest["result"]["data"][0]["date"] == "2024-03-01"  # now is 12:00:30 that day: today's 08:00 is past
    total = newest["result"]["records_total"]
    seen = []
    for offset in range(0, total + 10, 1000):
        _, page = call(sim.url, "get_delivery_prices", {"index_name": "eth_usd", "offset": offset, "count": 1000})
        seen += [row["date"] for row in page["result"]["data"]]
    assert len(seen) == len(set(seen)) == total
    delivered = [datetime.fromisoformat(d).replace(hour=8, tzinfo=UTC).timestamp() * 1000 for d in seen]
    assert max(delivered) <= SIM_NOW_MS and delivered == sorted(delivered, reverse=True)


def test_delivery_before_eight_is_yesterdays() -> None:
    with run_in_thread(sim_config(now=datetime(2024, 3, 1, 7, 59, 59, tzinfo=UTC))) as early:
        _, got = call(early.url, "get_delivery_prices", {"index_name": "btc_usd", "count": 3})
    assert [row["date"] for row in got["result"]["data"]] == ["2024-02-29", "2024-02-28", "2024-02-27"]


def _raw(url: str, path: str, body: bytes | None, method: str = "POST") -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"{url}{path}", data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


CHART = "/api/v2/public/get_tradingview_chart_data?instrument_name=BTC-PERPETUAL&resolution=1&end_timestamp=1"
MALFORMED = [  # path, body, HTTP method, expected HTTP status, code, data.param (or None), id echoed (or None)
    ("/api/v2/public/get_time", b'{"params":"x"}', "GET", 400, -32602, "params", None),
    ("/api/v2/public/get_time", b'{"id":4,"params":[1,2]}', "GET", 400, -32602, "params", 4),
    ("/api/v2/public/get_time", b"[1,2]", "GET", 400, 11050, None, None),
    ("/api/v2/public/get_time", b"garbage", "GET", 400, -32700, None, None),
    (
        "/api/v2",
        b'{"jsonrpc":"2.0","id":3,"method":"public/get_time","params":[1,2]}',
        "POST",
        400,
        -32602,
        "params",
        3,
    ),
    ("/api/v2", b'{"jsonrpc":"2.0","id":5,"method":"public/get_time","params":"x"}', "POST", 400, -32602, "params", 5),
    ("/api/v2", b"garbage", "POST", 400, -32700, None, None),
    ("/api/v2", b"[1]", "POST", 400, 11050, None, None),
    ("/api/v2", b'{"jsonrpc":"2.0","id":6,"method":5}', "POST", 400, 11050, None, 6),
    (
        "/api/v2",
        b'{"id":7,"method":"public/get_index_price","params":{"index_name":["btc_usd"]}}',
        "POST",
        400,
        -32602,
        "index_name",
        7,
    ),
    (CHART + "&start_timestamp=1e400", None, "GET", 400, -32602, "start_timestamp", None),
    (CHART + "&start_timestamp=nan", None, "GET", 400, -32602, "start_timestamp", None),
    (CHART + "&start_timestamp=" + "9" * 40, None, "GET", 400, -32602, "start_timestamp", None),
    (
        "/api/v2",
        b'{"method":"public/get_time","params":{},"pad":"' + b"x" * 40_000 + b'"}',
        "POST",
        413,
        11050,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "verb", "http_status", "code", "param", "request_id"),
    MALFORMED,
    ids=[f"{m[2]} {m[0][-30:]} {(m[1] or b'')[:30]!r}" for m in MALFORMED],
)
def test_malformed_requests_get_json_rpc_errors(
    sim: SimHandle,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: bytes | None,
    verb: str,
    http_status: int,
    code: int,
    param: str | None,
    request_id: int | None,
) -> None:
    caplog.set_level(logging.ERROR)
    status, content_type, raw = _raw(sim.url, path, body, verb)
    assert (status, content_type) == (http_status, "application/json"), raw[:200]
    got = json.loads(raw)
    assert got["jsonrpc"] == "2.0" and "result" not in got and got["testnet"] is False
    assert isinstance(got["error"]["message"], str) and got["error"]["code"] == code
    if param is not None:
        assert got["error"]["data"]["param"] == param
    assert got.get("id") == request_id
    assert not caplog.records  # no traceback in the server's log either


@pytest.mark.parametrize(
    "body", [b"garbage", b"[1]", b'{"now_ms":"x"}', b'{"now_ms":-5}', b'{"now_ms":true}', b'{"now_ms":1e300}']
)
def test_admin_clock_rejects_bad_bodies(caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    caplog.set_level(logging.ERROR)
    with run_in_thread(sim_config()) as sim:
        status, content_type, raw = _raw(sim.url, "/_sim/clock", body)
        assert (status, content_type) == (400, "application/json")
        assert "now_ms" in json.loads(raw)["error"]
        assert sim.market.now_ms() == SIM_NOW_MS  # the clock did not move
        status, _, raw = _raw(sim.url, "/_sim/clock", b'{"now_ms": 1709300000000}')
        assert status == 200 and json.loads(raw) == {"now_ms": 1709300000000}
    assert not caplog.records


def test_bad_request_matches_sample(sim: SimHandle) -> None:
    """A JSON-RPC object without a method is 11050 bad_request, with the request's id (docs example)."""
    expected = load("docs_error_response_bad_request.json")
    status, _, raw = _raw(sim.url, "/api/v2", json.dumps({"jsonrpc": "2.0", "id": expected["id"]}).encode())
    got = json.loads(raw)
    assert status == 400 and "result" not in got
    assert got["error"] == expected["error"] and got["id"] == expected["id"]
    assert_same_shape(expected, got)


def test_every_official_request_example_is_understood(sim: SimHandle) -> None:
    """Each request body of the spec, posted as is: an answer with its id; the only error allowed is an instrument
    the simulated market does not have (the examples name instruments of other years)."""
    for name, body in load("_official_request_examples.json").items():
        status, _, raw = _raw(sim.url, "/api/v2", json.dumps(body).encode())
        got = json.loads(raw)
        assert got["id"] == body["id"], name
        if status != 200:
            assert got["error"]["data"] == {"reason": "instrument not found", "param": "instrument_name"}, name


def test_every_method_ccxt_was_seen_calling_exists() -> None:
    text = (SAMPLES / "ccxt_4.5.90_observed_requests.txt").read_text()
    called = set(re.findall(r"/api/v2/public/(\w+)", text))
    assert called and called <= set(METHODS)


# Samples no test compares, each with the reason. With the tested ones this must be every file in SAMPLES, so a
# sample added to the folder fails test_every_sample_is_tested_or_excluded until it is tested or listed here.
_WEBSOCKET = "WebSocket subscription traffic: the simulator serves REST only (deribit-ts collects over REST)"
EXCLUDED = {
    "SOURCES.md": "provenance of the samples, not a payload",
    "docs_error_response_invalid_token.json": "private API (an expired access_token): the simulator serves the "
    "public API only and answers private/* with 13009 unauthorized",
    "docs_account_summary_limits_example.json": "private/get_account_summary: private API, out of scope",
    "ccxt_pro_ws_chart_trades_notification.json": _WEBSOCKET,
    "ccxt_pro_ws_error_response.json": _WEBSOCKET,
    "ccxt_pro_ws_subscribe_response.json": _WEBSOCKET,
    "ccxt_pro_ws_ticker_notification.json": _WEBSOCKET,
    "ccxt_pro_ws_trades_notification.json": _WEBSOCKET,
    "docs_ws_chart_trades_notification_data.json": _WEBSOCKET,
    "docs_ws_subscribe_request_examples.json": _WEBSOCKET,
    "docs_ws_ticker_notification_data.json": _WEBSOCKET,
}
TESTED_ELSEWHERE = {  # samples the dedicated tests above read
    "vike_fixture_get_instruments_2026_subset.json",
    "ccxt_comment_get_instruments.json",
    "docs_error_response_bad_request.json",
    "_official_request_examples.json",
    "ccxt_4.5.90_observed_requests.txt",
}


def test_every_sample_is_tested_or_excluded() -> None:
    present = {path.name for path in SAMPLES.iterdir()}
    tested = {c[0] for c in CASES} | {c[0] for c in ERROR_CASES} | TESTED_ELSEWHERE
    assert not tested & set(EXCLUDED)
    assert present == tested | set(EXCLUDED), (
        f"untested, unexcluded: {sorted(present - tested - set(EXCLUDED))}; "
        f"listed but absent: {sorted((tested | set(EXCLUDED)) - present)}"
    )


def test_mark_price_history_is_the_options_five_minute_marks(sim: SimHandle, names: dict) -> None:
    option = sim.market.instrument(names["btc_option"])
    _, got = call(
        sim.url,
        "get_mark_price_history",
        {"instrument_name": option.name, "start_timestamp": SIM_NOW_MS - 6 * H, "end_timestamp": SIM_NOW_MS},
    )
    points = got["result"]
    stamps = [ts for ts, _ in points]
    step = 300_000
    newest = SIM_NOW_MS // step * step
    assert stamps == list(range(newest, SIM_NOW_MS - 6 * H - 1, -step))  # newest first, like the example
    assert all(mark == sim.market.mark_price(option, ts) for ts, mark in points)
    _, perp = call(
        sim.url,
        "get_mark_price_history",
        {"instrument_name": "BTC-PERPETUAL", "start_timestamp": SIM_NOW_MS - H, "end_timestamp": SIM_NOW_MS},
    )
    assert perp["result"] == []  # Deribit: futures and perpetuals have none
    _, wide = call(
        sim.url,
        "get_mark_price_history",
        {"instrument_name": option.name, "start_timestamp": 0, "end_timestamp": 99_999_999_999_999},
    )
    assert wide["result"][0] == points[0] and len(wide["result"]) <= sim.config.mark_history_max_rows
    assert wide["result"][-1][0] >= option.creation_ms
