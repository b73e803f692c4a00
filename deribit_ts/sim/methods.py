"""The public API methods: validate parameters, ask SimMarket, shape the result like Deribit does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from deribit_ts.sim import snapshots
from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.chart import RESOLUTION_ALIASES, RESOLUTION_MINUTES
from deribit_ts.sim.errors import ApiError, instrument_not_found, invalid_params
from deribit_ts.sim.market import CURRENCIES, SimMarket
from deribit_ts.sim.params import Params
from deribit_ts.sim.paths import DAY_MS, HOUR_MS
from deribit_ts.sim.trades import Trade

Method = Callable[[SimMarket, Params, int, dict], object]
METHODS: dict[str, Method] = {}
API_CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "EURR")
KINDS = ("future", "option", "spot", "future_combo", "option_combo")
INDEX_NAMES = {"btc_usd": "BTC", "eth_usd": "ETH"}
_INDEX_RANGES_MS = {"1h": HOUR_MS, "1d": DAY_MS, "2d": 2 * DAY_MS, "1m": 30 * DAY_MS, "1y": 365 * DAY_MS}
VERSION = "1.2.26"


def method(name: str) -> Callable[[Method], Method]:
    def register(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return register


def _instrument(m: SimMarket, p: Params, now: int) -> Instrument:
    name = p.text("instrument_name", required=True)
    inst = m.instrument(name, now)
    if inst is None:
        raise instrument_not_found()
    return inst


def _currency(p: Params, *, required: bool = True) -> str | None:
    return p.text("currency", required=required, choices=API_CURRENCIES, reason="invalid currency")


def _index_currency(p: Params) -> str:
    name = p.text("index_name", required=True)
    if name not in INDEX_NAMES:
        raise invalid_params("invalid index_name", "index_name")
    return INDEX_NAMES[name]


# ---- reference data -------------------------------------------------------------------------------------------------
@method("get_time")
def get_time(m: SimMarket, p: Params, now: int, note: dict) -> int:
    return now


@method("test")
def test(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    if p.text("expected_result") == "exception":
        raise ApiError(11094, "internal_server_error", {"reason": "expected_result=exception"})
    return {"version": VERSION}


@method("status")
def status(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    return {"locked_currencies": [], "locked": False}


@method("get_currencies")
def get_currencies(m: SimMarket, p: Params, now: int, note: dict) -> list[dict]:
    return [
        {
            "coin_type": "BITCOIN",
            "currency": "BTC",
            "currency_long": "Bitcoin",
            "min_confirmations": 1,
            "min_withdrawal_fee": 0.0001,
            "withdrawal_fee": 0.0001,
            "withdrawal_priorities": [{"value": 0.15, "name": "very_low"}, {"value": 1.5, "name": "very_high"}],
            "network_currency": "BTC",
            "network_fee": 0.0001,
            "decimals": 8,
            "apr": 0.0,
            "in_cross_collateral_pool": True,
        },
        {
            "coin_type": "ETHER",
            "currency": "ETH",
            "currency_long": "Ethereum",
            "min_confirmations": 1,
            "min_withdrawal_fee": 0.0001,
            "withdrawal_fee": 0.0006,
            "withdrawal_priorities": [],
            "network_currency": "ETH",
            "network_fee": 0.0006,
            "decimals": 6,
            "apr": 0.0,
            "in_cross_collateral_pool": True,
        },
    ]


@method("get_instruments")
def get_instruments(m: SimMarket, p: Params, now: int, note: dict) -> list[dict]:
    currency = p.text("currency", "any", choices=(*API_CURRENCIES, "any"), reason="invalid currency")
    kind = p.text("kind", choices=KINDS, reason="invalid kind")
    expired = p.boolean("expired")
    if currency not in (*CURRENCIES, "any") or kind not in (None, "future", "option"):
        return []
    return [i.to_api(now) for i in m.instruments(currency, kind, expired, now)]


@method("get_instrument")
def get_instrument(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    return _instrument(m, p, now).to_api(now)


@method("get_expirations")
def get_expirations(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    currency = p.text("currency", required=True, choices=(*API_CURRENCIES, "any", "grouped"), reason="invalid currency")
    kind = p.text("kind", "any", choices=("future", "option", "any"), reason="invalid kind")
    out: dict[str, list[str]] = {}
    for k in ("future", "option"):
        if kind in (k, "any"):
            labels = {i.name.split("-")[1] for i in m.instruments(currency, k, False, now)}
            out[k] = sorted(labels, key=lambda s: (s == "PERPETUAL", _label_sort(s)))
    return out


def _label_sort(label: str) -> float:
    try:
        return datetime.strptime(label.title(), "%d%b%y").timestamp()
    except ValueError:
        return float("inf")


# ---- chart data ----------------------------------------------------------------------------------------------------
@method("get_tradingview_chart_data")
def get_tradingview_chart_data(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    inst = _instrument(m, p, now)
    start = p.integer("start_timestamp", required=True)
    end = p.integer("end_timestamp", required=True)
    resolution = p.text("resolution", required=True)
    resolution = RESOLUTION_ALIASES.get(resolution, resolution)
    if resolution not in RESOLUTION_MINUTES:
        raise invalid_params("unsupported resolution", "resolution")
    c = m.chart(inst.name, start, end, resolution, now_ms=now)  # numpy columns: see server._send
    note["candles"] = len(c["ticks"])
    return {
        "volume": c["volume"],
        "ticks": c["ticks"],
        "status": "ok" if len(c["ticks"]) else "no_data",
        "open": c["open"],
        "low": c["low"],
        "high": c["high"],
        "cost": c["cost"],
        "close": c["close"],
    }


# ---- funding ---------------------------------------------------------------------------------------------------------
def _perpetual(m: SimMarket, p: Params, now: int) -> Instrument:
    inst = _instrument(m, p, now)
    if not inst.is_perpetual:
        raise invalid_params("instrument is not a perpetual", "instrument_name")
    return inst


@method("get_funding_rate_history")
def get_funding_rate_history(m: SimMarket, p: Params, now: int, note: dict) -> list[dict]:
    inst = _perpetual(m, p, now)
    # The cap is applied while generating, so a years-wide request costs one page of rows.
    return m.funding(
        inst.name,
        p.integer("start_timestamp", required=True),
        p.integer("end_timestamp", required=True),
        now_ms=now,
        limit=m.config.funding_max_rows,
        newest=m.config.funding_truncate == "old",
    )


@method("get_funding_rate_value")
def get_funding_rate_value(m: SimMarket, p: Params, now: int, note: dict) -> float:
    inst = _perpetual(m, p, now)
    return m.funding_value(
        inst.name, p.integer("start_timestamp", required=True), p.integer("end_timestamp", required=True), now_ms=now
    )


@method("get_funding_chart_data")
def get_funding_chart_data(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    inst = _perpetual(m, p, now)
    length = p.text("length", required=True, choices=("8h", "24h", "1m"))
    span = {"8h": 8 * HOUR_MS, "24h": DAY_MS, "1m": 30 * DAY_MS}[length]
    rows = m.funding(inst.name, now - span, now, now_ms=now)
    current, funding_8h = snapshots._current_funding(m, inst, now)
    return {
        "current_interest": current,
        "interest_8h": funding_8h,
        "data": [
            {"timestamp": r["timestamp"], "index_price": r["index_price"], "interest_8h": r["interest_8h"]}
            for r in rows
        ],
    }


# ---- index -----------------------------------------------------------------------------------------------------------
@method("get_index_price")
def get_index_price(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    price = m.paths[_index_currency(p)].index_at(now)
    return {"index_price": price, "estimated_delivery_price": price}


@method("get_index_price_names")
def get_index_price_names(m: SimMarket, p: Params, now: int, note: dict) -> list:
    if p.boolean("extended"):
        return [
            {"name": n, "future_combo_creation_enabled": True, "option_combo_creation_enabled": True}
            for n in INDEX_NAMES
        ]
    return list(INDEX_NAMES)


@method("get_supported_index_names")
def get_supported_index_names(m: SimMarket, p: Params, now: int, note: dict) -> list[str]:
    return list(INDEX_NAMES)


@method("get_index_chart_data")
def get_index_chart_data(m: SimMarket, p: Params, now: int, note: dict) -> list[list]:
    currency = _index_currency(p)
    span = p.text("range", required=True, choices=(*_INDEX_RANGES_MS, "all"))
    step = m.config.index_chart_resolution[span] * 1000
    start = m.config.start_ms if span == "all" else now - _INDEX_RANGES_MS[span]
    return m.index_series(currency, start, now, step)


@method("get_delivery_prices")
def get_delivery_prices(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    currency = _index_currency(p)
    offset = p.integer("offset", 0)
    if offset < 0:  # a negative offset would page past the newest delivery, into the simulated future
        raise invalid_params("must not be negative", "offset")
    count = p.integer("count", 10)
    if not 1 <= count <= 1000:
        raise invalid_params("must be between 1 and 1000", "count")
    return m.delivery_prices(currency, offset, count, now)


@method("get_volatility_index_data")
def get_volatility_index_data(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    currency = _currency(p)
    start = p.integer("start_timestamp", required=True)
    end = p.integer("end_timestamp", required=True)
    resolution = p.text(
        "resolution", required=True, choices=("1", "60", "3600", "43200", "1D"), reason="unsupported resolution"
    )
    seconds = 86400 if resolution == "1D" else int(resolution)
    if currency not in CURRENCIES:
        return {"data": [], "continuation": None}
    return m.dvol(currency, start, end, seconds, now)


@method("get_historical_volatility")
def get_historical_volatility(m: SimMarket, p: Params, now: int, note: dict) -> list[list]:
    currency = _currency(p)
    if currency not in CURRENCIES:
        return []
    return m.historical_volatility(currency, now)


# ---- snapshots -------------------------------------------------------------------------------------------------
@method("ticker")
def ticker(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    return snapshots.ticker(m, _instrument(m, p, now), now)


@method("get_book_summary_by_instrument")
def get_book_summary_by_instrument(m: SimMarket, p: Params, now: int, note: dict) -> list[dict]:
    return [snapshots.book_summary(m, _instrument(m, p, now), now)]


@method("get_book_summary_by_currency")
def get_book_summary_by_currency(m: SimMarket, p: Params, now: int, note: dict) -> list[dict]:
    currency = _currency(p)
    kind = p.text("kind", choices=KINDS, reason="invalid kind")
    if currency not in CURRENCIES or kind not in (None, "future", "option"):
        return []
    return snapshots.book_summaries(m, m.instruments(currency, kind, False, now), now)


@method("get_order_book")
def get_order_book(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    inst = _instrument(m, p, now)
    depth = p.integer("depth", 20)
    if depth not in (1, 5, 10, 20, 50, 100, 1000, 10000):
        raise invalid_params("invalid depth", "depth")
    return snapshots.order_book(m, inst, now, min(depth, 50))


@method("get_mark_price_history")
def get_mark_price_history(m: SimMarket, p: Params, now: int, note: dict) -> list[list]:
    inst = _instrument(m, p, now)
    start = p.integer("start_timestamp", required=True)
    end = p.integer("end_timestamp", required=True)
    return m.mark_price_history(inst, start, end, now)


@method("get_last_settlements_by_instrument")
def get_last_settlements_by_instrument(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    """Daily 08:00 settlements (and the delivery at expiry), newest first; `continuation` pages further back."""
    inst = _instrument(m, p, now)
    p.text("type", choices=("settlement", "delivery", "bankruptcy"))
    count = p.integer("count", 20)
    if not 1 <= count <= 1000:
        raise invalid_params("must be between 1 and 1000", "count")
    before = p.integer("search_start_timestamp", now)
    continuation = p.text("continuation")
    if continuation is not None:
        if not continuation.isdigit():
            raise invalid_params("invalid continuation", "continuation")
        before = min(before, int(continuation))
    last = min(before, now, inst.expiry_ms)
    day = (last - 8 * HOUR_MS) // DAY_MS
    rows, nxt = [], None
    while True:
        ts = day * DAY_MS + 8 * HOUR_MS
        if ts <= inst.creation_ms or ts < m.config.start_ms:
            break
        if len(rows) == count:
            nxt = str(ts)
            break
        rows.append(
            {
                "type": "delivery" if ts == inst.expiry_ms else "settlement",
                "timestamp": ts,
                "session_profit_loss": 0.0,
                "profit_loss": 0.0,
                "position": 0,
                "mark_price": m.mark_price(inst, min(ts, inst.expiry_ms - 1)),
                "instrument_name": inst.name,
                "index_price": m.paths[inst.currency].index_at(ts),
            }
        )
        day -= 1
    return {"settlements": rows, "continuation": nxt}


# ---- trades ----------------------------------------------------------------------------------------------------------
def _count_and_sorting(m: SimMarket, p: Params) -> tuple[int, str]:
    count = p.integer("count", 10)
    if not 1 <= count <= m.config.trades_max_count:
        raise invalid_params(f"must be between 1 and {m.config.trades_max_count}", "count")
    sorting = p.text("sorting", "default", choices=("asc", "desc", "default"))
    return count, sorting


@method("get_last_trades_by_instrument")
def get_last_trades_by_instrument(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    inst = _instrument(m, p, now)
    count, sorting = _count_and_sorting(m, p)
    start, end = p.integer("start_timestamp"), p.integer("end_timestamp")
    start_seq, end_seq = p.integer("start_seq"), p.integer("end_seq")
    return _trades_result(m, [inst], start, end, count, sorting, now, start_seq, end_seq)


@method("get_last_trades_by_instrument_and_time")
def get_last_trades_by_instrument_and_time(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    inst = _instrument(m, p, now)
    count, sorting = _count_and_sorting(m, p)
    start, end = p.integer("start_timestamp"), p.integer("end_timestamp")
    if start is None and end is None:
        raise invalid_params("value is required", "start_timestamp")
    return _trades_result(m, [inst], start, end, count, sorting, now)


def _currency_trades(m: SimMarket, p: Params, now: int, need_time: bool) -> dict:
    currency = _currency(p)
    kind = p.text("kind", "any", choices=(*KINDS, "any"), reason="invalid kind")
    count, sorting = _count_and_sorting(m, p)
    start, end = p.integer("start_timestamp"), p.integer("end_timestamp")
    if need_time and start is None and end is None:
        raise invalid_params("value is required", "start_timestamp")
    floor = now - DAY_MS  # by-currency methods only reach back 24 hours: an older start returns nothing, no error
    if currency not in CURRENCIES or (start is not None and start < floor):
        return {"trades": [], "has_more": False}
    start = max(start if start is not None else floor, floor)
    insts = [i for i in m.catalogue.alive(currency, now) if kind == "any" or i.kind == kind]
    insts += [
        i
        for i in m.instruments(currency, None if kind == "any" else kind, True, now)
        if i.expiry_ms > floor and i not in insts
    ]
    return _trades_result(m, insts, start, end, count, sorting, now)


@method("get_last_trades_by_currency")
def get_last_trades_by_currency(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    return _currency_trades(m, p, now, need_time=False)


@method("get_last_trades_by_currency_and_time")
def get_last_trades_by_currency_and_time(m: SimMarket, p: Params, now: int, note: dict) -> dict:
    return _currency_trades(m, p, now, need_time=True)


def _trades_result(
    m: SimMarket,
    insts: list[Instrument],
    start: int | None,
    end: int | None,
    count: int,
    sorting: str,
    now: int,
    start_seq: int | None = None,
    end_seq: int | None = None,
) -> dict:
    ascending = sorting == "asc"  # 'default' is newest first, like 'desc'
    found: list[tuple[Instrument, Trade]] = []
    for inst in insts:
        for trade in m.trades(
            inst.name, start, end, count + 1, ascending, now_ms=now, start_seq=start_seq, end_seq=end_seq
        ):
            found.append((inst, trade))
    found.sort(key=lambda it: (it[1].timestamp, it[1].trade_seq), reverse=not ascending)
    has_more = len(found) > count
    by_instrument: dict[str, list[int]] = {}
    for k, (inst, _) in enumerate(found[:count]):
        by_instrument.setdefault(inst.name, []).append(k)
    rows: list[dict] = [{}] * min(count, len(found))
    for positions in by_instrument.values():
        inst = found[positions[0]][0]
        for k, row in zip(positions, m.trades_json(inst, [found[k][1] for k in positions]), strict=True):
            rows[k] = row
    return {"trades": rows, "has_more": has_more}


def today_label(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
