"""What the exchange may answer: the shape and range of every reply, checked before anything is written.

The exchange is untrusted input. A reply of a method listed in SHAPES is checked by DeribitClient.call as soon as it
is parsed; one that is not what its dataset needs (a string or null where a number belongs, a non-finite number, a
value no market produces) raises BadReplyError, which fails the task (the window, the snapshot round, the job) that
asked, with the exchange's words and the request, and nothing of the reply is stored. Everything else goes on.

Bounds (docs/input.md says the same for users): values beyond them are refused, never stored.
- every number is finite (JSON has no NaN or Infinity; Python's parser would take them);
- prices (candles, index, delivery, marks, underlyings, strikes) are from 0 to PRICE_MAX, in their quote currency
  (USD, or the coin for inverse options): no market trades at a billion units of its quote;
- amounts (volumes, costs, open interest) are from 0 to AMOUNT_MAX;
- implied volatilities (IVs, DVOL) are in percent, from 0 to IV_MAX;
- funding rates and interest rates are fractions within +-RATE_MAX per period;
- greeks and other signed figures are within +-FIGURE_MAX;
- timestamps are milliseconds from STAMP_MIN to STAMP_MAX;
- names (instruments, currencies, indexes) are non-empty strings of at most NAME_MAX_CHARS (they may hold any
  character: everything printed goes through deribit_ts.display.printable).
The trades stream's replies use the same mechanism: add a shape for the method to SHAPES.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from deribit_ts.exchange.errors import UnexpectedReplyError, _short_params

PRICE_MAX = 1e9
AMOUNT_MAX = 1e15
IV_MAX = 1e4
RATE_MAX = 1.0
FIGURE_MAX = 1e9
STAMP_MIN = int(datetime(2009, 1, 1, tzinfo=UTC).timestamp() * 1000)
STAMP_MAX = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
NAME_MAX_CHARS = 128
SHOWN_CHARS = 60  # how much of a bad value a message quotes

_NUMBER_TYPES = (int, float)


class BadReplyError(UnexpectedReplyError):
    """A reply that is not what its dataset needs: refused before anything of it is written."""

    def __init__(self, method: str, params: dict[str, Any], problem: str):
        self.method = method
        self.params = dict(params)
        self.problem = problem
        super().__init__(f"{method}({_short_params(params)}) answered {problem}: refused, nothing of it stored")


class _Bad(Exception):
    """Raised by a shape check; BadReplyError adds the request to its text."""


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string {_quote(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return _quote(value)


def number(value: Any, where: str, lo: float, hi: float, *, nullable: bool = False) -> float | None:
    """A finite JSON number within [lo, hi] (None where `nullable`)."""
    if value is None and nullable:
        return None
    if type(value) not in _NUMBER_TYPES:  # bool is an int subclass, and not a number here
        raise _Bad(f"{_what(value)} where {where} needs a number")
    if not math.isfinite(value):
        raise _Bad(f"{value} at {where}: not a finite number")
    if not lo <= value <= hi:
        raise _Bad(f"{_quote(value)} at {where}, outside [{lo:g}, {hi:g}] (no market produces it)")
    return value


def stamp(value: Any, where: str, *, nullable: bool = False) -> int | None:
    """A timestamp in whole milliseconds within [STAMP_MIN, STAMP_MAX]."""
    if value is None and nullable:
        return None
    if type(value) not in _NUMBER_TYPES or (type(value) is float and not value.is_integer()):
        raise _Bad(f"{_what(value)} where {where} needs a timestamp in milliseconds")
    if not STAMP_MIN <= value <= STAMP_MAX:
        raise _Bad(f"{_quote(value)} at {where}, not a time from 2009 to 2100 in milliseconds")
    return int(value)


def name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"{_what(value)} where {where} needs a name")
    if len(value) > NAME_MAX_CHARS:
        raise _Bad(f"a name of {len(value):,} characters at {where} (at most {NAME_MAX_CHARS})")
    return value


def obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{_what(value)} where {where} needs an object")
    return value


def items(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise _Bad(f"{_what(value)} where {where} needs a list")
    return value


def column(values: Any, where: str, lo: float, hi: float) -> None:
    """A list of numbers within [lo, hi]. Checked in bulk first (a chart reply holds 35,000 numbers): any NaN or
    Infinity makes the sum non-finite; only a list that fails is walked to name the first bad value."""
    values = items(values, where)
    if all(type(v) in _NUMBER_TYPES for v in values):
        total = sum(values)
        if math.isfinite(total) and (not values or (lo <= min(values) and max(values) <= hi)):
            return
    for i, v in enumerate(values):
        number(v, f"{where}[{i}]", lo, hi)


def stamps(values: Any, where: str) -> None:
    values = items(values, where)
    if all(type(v) is int for v in values) and (not values or (STAMP_MIN <= min(values) and max(values) <= STAMP_MAX)):
        return
    for i, v in enumerate(values):
        stamp(v, f"{where}[{i}]")


def finite_everywhere(value: Any, where: str, depth: int = 0) -> None:
    """No non-finite number anywhere inside (for objects stored whole, e.g. an instrument's raw JSON)."""
    if depth > 20:
        raise _Bad(f"nesting deeper than 20 levels at {where}")
    if type(value) is float and not math.isfinite(value):
        raise _Bad(f"{value} at {where}: not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            finite_everywhere(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            finite_everywhere(item, f"{where}[{i}]", depth + 1)


# ------------------------------------------------------------------------------------------------------------
# One shape per method


def chart(result: Any) -> None:
    """public/get_tradingview_chart_data: columns of equal length; prices, volumes and costs in range."""
    result = obj(result, "the chart")
    if result.get("status") not in (None, "ok", "no_data"):
        raise _Bad(f"status {_what(result.get('status'))} (expected 'ok' or 'no_data')")
    lengths = {}
    for key, lo, hi in (
        ("open", 0, PRICE_MAX),
        ("high", 0, PRICE_MAX),
        ("low", 0, PRICE_MAX),
        ("close", 0, PRICE_MAX),
        ("volume", 0, AMOUNT_MAX),
        ("cost", 0, AMOUNT_MAX),
    ):
        if result.get(key) is not None:
            column(result[key], key, lo, hi)
            lengths[key] = len(result[key])
    if result.get("ticks") is not None:
        stamps(result["ticks"], "ticks")
        lengths = {"ticks": len(result["ticks"]), **lengths}
    if len(set(lengths.values())) > 1:
        raise _Bad(f"columns of different lengths ({', '.join(f'{k} {n}' for k, n in lengths.items())})")


def funding_history(result: Any) -> None:
    """public/get_funding_rate_history: hourly rows of rates and index prices."""
    for i, row in enumerate(items(result, "the funding history")):
        row = obj(row, f"[{i}]")
        stamp(row.get("timestamp"), f"[{i}].timestamp")
        number(row.get("interest_1h"), f"[{i}].interest_1h", -RATE_MAX, RATE_MAX)
        number(row.get("interest_8h"), f"[{i}].interest_8h", -RATE_MAX, RATE_MAX)
        number(row.get("index_price"), f"[{i}].index_price", 0, PRICE_MAX)
        number(row.get("prev_index_price"), f"[{i}].prev_index_price", 0, PRICE_MAX, nullable=True)


def index_chart(result: Any) -> None:
    """public/get_index_chart_data: [timestamp, price] pairs (a point without a price is skipped when read)."""
    for i, point in enumerate(items(result, "the index chart")):
        point = items(point, f"[{i}]")
        if len(point) < 2:
            raise _Bad(f"a point of {len(point)} value(s) at [{i}] (expected [timestamp, price])")
        stamp(point[0], f"[{i}][0]")
        number(point[1], f"[{i}][1]", 0, PRICE_MAX, nullable=True)


def dvol(result: Any) -> None:
    """public/get_volatility_index_data: [timestamp, open, high, low, close] in percent, and a continuation."""
    result = obj(result, "the volatility index reply")
    for i, row in enumerate(items(result.get("data"), "data")):
        row = items(row, f"data[{i}]")
        if len(row) < 5:
            raise _Bad(f"a row of {len(row)} value(s) at data[{i}] (expected [timestamp, open, high, low, close])")
        stamp(row[0], f"data[{i}][0]")
        for j in range(1, 5):
            number(row[j], f"data[{i}][{j}]", 0, IV_MAX)
    stamp(result.get("continuation"), "continuation", nullable=True)


def delivery_prices(result: Any) -> None:
    """public/get_delivery_prices: a page of {date, delivery_price} and the number of records."""
    result = obj(result, "the delivery prices reply")
    total = result.get("records_total")
    if type(total) is not int or total < 0:
        raise _Bad(f"{_what(total)} where records_total needs a whole number")
    for i, row in enumerate(items(result.get("data"), "data")):
        row = obj(row, f"data[{i}]")
        day = row.get("date")
        try:
            datetime.strptime(day, "%Y-%m-%d")  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _Bad(f"{_what(day)} where data[{i}].date needs a date (YYYY-MM-DD)") from None
        number(row.get("delivery_price"), f"data[{i}].delivery_price", 0, PRICE_MAX)


_INSTRUMENT_PRICES = ("strike", "tick_size", "contract_size", "min_trade_amount")
_INSTRUMENT_FIGURES = ("maker_commission", "taker_commission", "max_leverage")


def instrument(result: Any, where: str = "the instrument") -> None:
    """An instrument of public/get_instruments or public/get_instrument (stored whole, as raw JSON too)."""
    raw = obj(result, where)
    name(raw.get("instrument_name"), f"{where}.instrument_name")
    for key in _INSTRUMENT_PRICES:
        if raw.get(key) not in (None, ""):
            number(raw[key], f"{where}.{key}", 0, PRICE_MAX)
    for key in _INSTRUMENT_FIGURES:
        if raw.get(key) not in (None, ""):
            number(raw[key], f"{where}.{key}", -FIGURE_MAX, FIGURE_MAX)
    for key in ("creation_timestamp", "expiration_timestamp"):
        if raw.get(key) not in (None, ""):
            stamp_or_far_future(raw[key], f"{where}.{key}")
    finite_everywhere(raw, where)


def stamp_or_far_future(value: Any, where: str) -> None:
    """Perpetuals expire in the year 3000 (Deribit's way of saying never)."""
    if type(value) is int and value > STAMP_MAX and value < 2**53:
        return
    stamp(value, where)


def instrument_list(result: Any) -> None:
    for i, raw in enumerate(items(result, "the instrument list")):
        instrument(raw, f"[{i}]")


def currencies(result: Any) -> None:
    for i, row in enumerate(items(result, "the currency list")):
        name(obj(row, f"[{i}]").get("currency"), f"[{i}].currency")


def index_names(result: Any) -> None:
    for i, item in enumerate(items(result, "the index names")):
        name(obj(item, f"[{i}]").get("name") if isinstance(item, dict) else item, f"[{i}]")


def index_price(result: Any) -> None:
    result = obj(result, "the index price")
    number(result.get("index_price"), "index_price", 0, PRICE_MAX)
    number(result.get("estimated_delivery_price"), "estimated_delivery_price", 0, PRICE_MAX, nullable=True)


_QUOTE_PRICES = (
    "underlying_price",
    "index_price",
    "estimated_delivery_price",
    "mark_price",
    "best_bid_price",
    "best_ask_price",
    "bid_price",
    "ask_price",
    "last_price",
)
_QUOTE_IVS = ("mark_iv", "bid_iv", "ask_iv")
_GREEKS = ("delta", "gamma", "vega", "theta", "rho")


def _quote_values(row: dict, where: str) -> None:
    """The values of a quote (ticker or book summary) that a snapshot stores; null where the exchange has none (every
    instrument has a mark price)."""
    number(row.get("mark_price"), f"{where}.mark_price", 0, PRICE_MAX)
    for key in _QUOTE_PRICES:
        number(row.get(key), f"{where}.{key}", 0, PRICE_MAX, nullable=True)
    for key in _QUOTE_IVS:
        number(row.get(key), f"{where}.{key}", 0, IV_MAX, nullable=True)
    number(row.get("open_interest"), f"{where}.open_interest", 0, AMOUNT_MAX, nullable=True)
    number(row.get("interest_rate"), f"{where}.interest_rate", -RATE_MAX, RATE_MAX, nullable=True)
    underlying = row.get("underlying_index")
    if underlying is not None:
        name(underlying, f"{where}.underlying_index")
    finite_everywhere(row, where)


def ticker(result: Any) -> None:
    """public/ticker: the quote, its timestamp and (options) the exchange's greeks."""
    result = obj(result, "the ticker")
    stamp(result.get("timestamp"), "timestamp")
    _quote_values(result, "ticker")
    greeks = result.get("greeks")
    if greeks is not None:
        greeks = obj(greeks, "greeks")
        for key in _GREEKS:
            number(greeks.get(key), f"greeks.{key}", -FIGURE_MAX, FIGURE_MAX, nullable=True)


def book_summaries(result: Any) -> None:
    """public/get_book_summary_by_currency: one quote per instrument."""
    for i, row in enumerate(items(result, "the book summaries")):
        row = obj(row, f"[{i}]")
        name(row.get("instrument_name"), f"[{i}].instrument_name")
        stamp(row.get("creation_timestamp"), f"[{i}].creation_timestamp")
        _quote_values(row, f"[{i}]")


def trades_page(result: Any) -> None:
    """public/get_last_trades_by_*_and_time: a page of trades and whether more follow."""
    result = obj(result, "the trades page")
    for i, trade in enumerate(items(result.get("trades") or [], "trades")):
        trade = obj(trade, f"trades[{i}]")
        name(trade.get("instrument_name"), f"trades[{i}].instrument_name")
        stamp(trade.get("timestamp"), f"trades[{i}].timestamp")
        for key in ("price", "index_price", "mark_price"):
            number(trade.get(key), f"trades[{i}].{key}", 0, PRICE_MAX, nullable=True)
        number(trade.get("amount"), f"trades[{i}].amount", 0, AMOUNT_MAX, nullable=True)
        number(trade.get("iv"), f"trades[{i}].iv", 0, IV_MAX, nullable=True)
    if not isinstance(result.get("has_more", False), bool):
        raise _Bad(f"{_what(result.get('has_more'))} where has_more needs true or false")


def time(result: Any) -> None:
    stamp(result, "the time")


SHAPES: dict[str, Callable[[Any], None]] = {
    "get_tradingview_chart_data": chart,
    "get_funding_rate_history": funding_history,
    "get_index_chart_data": index_chart,
    "get_volatility_index_data": dvol,
    "get_delivery_prices": delivery_prices,
    "get_instruments": instrument_list,
    "get_instrument": instrument,
    "get_currencies": currencies,
    "get_index_price_names": index_names,
    "get_index_price": index_price,
    "ticker": ticker,
    "get_book_summary_by_currency": book_summaries,
    "get_last_trades_by_currency_and_time": trades_page,
    "get_last_trades_by_instrument_and_time": trades_page,
    "get_time": time,
}


def check(method: str, params: dict[str, Any], result: Any) -> None:
    """Raise BadReplyError unless `result` has the shape and range `method`'s datasets need."""
    shape = SHAPES.get(method)
    if shape is None:
        return
    try:
        shape(result)
    except _Bad as exc:
        raise BadReplyError(f"public/{method}", params, str(exc)) from None
