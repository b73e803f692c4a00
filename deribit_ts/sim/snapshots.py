"""Point-in-time views of an instrument: ticker, book summary and order book, consistent with candles and index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.paths import DAY_MS, HOUR_MS, YEAR_MS
from deribit_ts.sim.pricing import chain_quotes, implied_vol, smile_vol_array
from deribit_ts.sim.seeds import text_key, unit

if TYPE_CHECKING:
    from deribit_ts.sim.market import SimMarket

_SETTLEMENT_HOUR = 8
_STATS_MEMO = 8192  # entries of (instrument, instant) -> 24 h stats; two whole chains fit


def _stats(market: SimMarket, inst: Instrument, at: int) -> dict:
    """24-hour statistics from the 1-minute candles served at `at` (remembered: a whole chain's candles are more
    day blocks than the block cache holds, and a snapshot round asks for every option's twice at one instant)."""
    key = (inst.name, at)
    hit = market.stats_memo.get(key)
    if hit is None:
        hit = _compute_stats(market, inst, at)
        with market.memo_lock:
            market.stats_memo[key] = hit
            while len(market.stats_memo) > _STATS_MEMO:
                market.stats_memo.popitem(last=False)
    return hit


def _compute_stats(market: SimMarket, inst: Instrument, at: int) -> dict:
    c = market.candle_arrays(inst.name, at - DAY_MS, at, "1", now_ms=at)
    if not len(c["ticks"]):
        return {
            "volume": 0.0,
            "volume_usd": 0.0,
            "high": None,
            "low": None,
            "price_change": None,
            "last": None,
            "first": None,
        }
    volume = round(float(c["volume"].sum()), 8)
    traded = c["volume"] > 0
    high = float(c["high"][traded].max()) if traded.any() else None
    low = float(c["low"][traded].min()) if traded.any() else None
    first, last = float(c["open"][0]), float(c["close"][-1])
    change = round((last / first - 1.0) * 100.0, 4) if first else None
    if inst.is_option:
        volume_usd = round(volume * market.paths[inst.currency].index_at(at), 2)
    else:
        volume_usd = round(float(c["cost"].sum()), 2)
    return {
        "volume": volume,
        "volume_usd": volume_usd,
        "high": high,
        "low": low,
        "price_change": change,
        "last": last,
        "first": first,
    }


def _quote(market: SimMarket, inst: Instrument, at: int, mark: float) -> tuple[float | None, float, float, float]:
    """(bid, bid amount, ask, ask amount) around the mark, varying by the second. An option whose mark is below
    two ticks mostly has no bid (price None, amount 0), as on the real chain's far wings."""
    second = at // 1000
    key = text_key(inst.name)
    seed = market.config.seed
    ticks_away = 1 + int(3 * unit(seed, key, 60, second))
    if inst.is_option:
        spread = max(inst.tick, round(mark * 0.02 / inst.tick) * inst.tick)
    else:
        spread = inst.tick * ticks_away
    bid = market.round_price(inst, mark - spread / 2)
    if inst.is_option:
        bid = max(bid, inst.tick)
    ask = market.round_price(inst, max(bid + inst.tick, mark + spread / 2))
    size = lambda k: round(inst.lot * (1 + int(400 * unit(seed, key, k, second) ** 3)), 8)  # noqa: E731
    if inst.is_option and (mark < inst.tick or (mark < 2 * inst.tick and unit(seed, key, 68, at // HOUR_MS) < 0.7)):
        return None, 0.0, ask, size(62)
    return bid, size(61), ask, size(62)


def _open_interest(market: SimMarket, inst: Instrument, at: int) -> float:
    u = unit(market.config.seed, text_key(inst.name), 63, at // HOUR_MS)
    if inst.is_perpetual:
        return float(int((3e8 if inst.currency == "BTC" else 1e8) * (0.8 + 0.4 * u) / inst.lot) * inst.lot)
    if not inst.is_option:
        return float(int(3e7 * (0.5 + u) / inst.lot) * inst.lot)
    return round(10 + 990 * u, 1)


def _settlement(market: SimMarket, inst: Instrument, at: int) -> float:
    """Mark at the latest daily 08:00 settlement before `at`."""
    day, rest = divmod(at, DAY_MS)
    settle = day * DAY_MS + _SETTLEMENT_HOUR * HOUR_MS
    if rest < _SETTLEMENT_HOUR * HOUR_MS:
        settle -= DAY_MS
    return market.mark_price(inst, max(settle, inst.creation_ms))


def _current_funding(market: SimMarket, inst: Instrument, at: int) -> tuple[float, float]:
    paths = market.paths[inst.currency]
    p = paths.premium_at(at)
    current = max(0.0, p - 0.00025) + min(0.0, p + 0.00025)
    hour = at // HOUR_MS
    funding_8h = sum(paths.interest_1h(h) for h in range(hour - 7, hour + 1))
    return round(current, 8), round(funding_8h, 8)


@dataclass(frozen=True)
class ChainView:
    """Options of one instant as the exchange reports them: arrays in the order of `insts`."""

    insts: list[Instrument]
    at: int
    years: np.ndarray  # (expiry - at) / 365 days: the T of every reported number
    forward: np.ndarray  # underlying_price (rounded to cents, as reported)
    mark_iv: np.ndarray  # percent, rounded to 2 decimals (as reported)
    mark: np.ndarray  # mark_price in coin: Black-76 at the reported forward and mark_iv, / forward
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray

    def underlying_index(self, market: SimMarket, i: int) -> str:
        inst = self.insts[i]
        listed = market.catalogue.get(inst.future_name, self.at) is not None
        return inst.future_name if listed else f"SYN.{inst.future_name}"


def chain_view(market: SimMarket, insts: list[Instrument], at: int) -> ChainView:
    """Marks, IVs and greeks of many options at `at` in one vectorised pass (docs/deribit.md).

    Every reported number is computed from the reported (rounded) inputs, so deribit.black76_greeks over a
    ticker's underlying_price, strike, (expiry - timestamp) / 365 days and mark_iv gives back its greeks."""
    n = len(insts)
    t = np.array([min(at, i.expiry_ms) for i in insts], dtype=np.int64)
    expiry = np.array([i.expiry_ms for i in insts], dtype=np.int64)
    years = np.maximum(expiry - t, 0) / YEAR_MS
    forwards: dict[tuple[str, int, int], float] = {}
    forward = np.empty(n)
    atm = np.empty(n)
    for j, inst in enumerate(insts):
        key = (inst.currency, inst.expiry_ms, int(t[j]))
        if key not in forwards:
            forwards[key] = round(market.forward(inst.currency, inst.expiry_ms, int(t[j])), 2)
        forward[j] = forwards[key]
        atm[j] = market.paths[inst.currency].atm_vol_at(int(t[j]))
    strike = np.array([i.strike for i in insts], dtype=np.float64)
    call = np.array([i.option_type == "call" for i in insts], dtype=bool)
    mark_iv = np.round(smile_vol_array(atm, forward, strike, years) * 100.0, 2)
    q = chain_quotes(call, forward, strike, years, mark_iv / 100.0)
    return ChainView(
        insts, at, years, forward, mark_iv, np.round(q.price_usd / forward, 8), q.delta, q.gamma, q.vega, q.theta, q.rho
    )


def option_marks(market: SimMarket, inst: Instrument, times: list[int]) -> tuple[list[float], list[float]]:
    """(mark_price, mark_iv) of one option at many instants, the values chain_view() reports at each: what the
    option's trades carry as mark_price and iv."""
    t = np.minimum(np.asarray(times, dtype=np.int64), inst.expiry_ms)
    years = np.maximum(inst.expiry_ms - t, 0) / YEAR_MS
    paths = market.paths[inst.currency]
    forward = np.array([round(market.forward(inst.currency, inst.expiry_ms, int(x)), 2) for x in t.tolist()])
    atm = np.array([paths.atm_vol_at(int(x)) for x in t.tolist()])
    strike = np.full(len(t), inst.strike)
    call = np.full(len(t), inst.option_type == "call")
    mark_iv = np.round(smile_vol_array(atm, forward, strike, years) * 100.0, 2)
    q = chain_quotes(call, forward, strike, years, mark_iv / 100.0)
    return np.round(q.price_usd / forward, 8).tolist(), mark_iv.tolist()


def _quote_ivs(view: ChainView, i: int, bid: float | None, ask: float) -> tuple[float, float]:
    """(bid_iv, ask_iv) in percent: the vols that price the bid and the ask; 0 where there is no bid."""
    inst = view.insts[i]
    f, years = float(view.forward[i]), float(view.years[i])
    call = inst.option_type == "call"
    bid_iv = implied_vol(call, f, inst.strike, years, bid * f) if bid else 0.0
    return round(bid_iv * 100, 2), round(implied_vol(call, f, inst.strike, years, ask * f) * 100, 2)


def option_view(market: SimMarket, inst: Instrument, at: int, bid: float | None, ask: float) -> dict:
    """Option-only ticker fields: underlying, IVs, greeks."""
    view = chain_view(market, [inst], at)
    bid_iv, ask_iv = _quote_ivs(view, 0, bid, ask)
    return {
        "underlying_index": view.underlying_index(market, 0),
        "underlying_price": float(view.forward[0]),
        "interest_rate": 0.0,
        "mark_iv": float(view.mark_iv[0]),
        "bid_iv": bid_iv,
        "ask_iv": ask_iv,
        "greeks": {
            "delta": round(float(view.delta[0]), 5),
            "gamma": round(float(view.gamma[0]), 5),
            "vega": round(float(view.vega[0]), 5),
            "theta": round(float(view.theta[0]), 5),
            "rho": round(float(view.rho[0]), 5),
        },
    }


def ticker(market: SimMarket, inst: Instrument, now: int) -> dict:
    """public/ticker for an instrument at `now` (frozen at expiry for expired instruments)."""
    at = min(now, inst.expiry_ms - 1)
    index = market.paths[inst.currency].index_at(at)
    mark = market.mark_price(inst, at)
    stats = _stats(market, inst, at)
    bid, bid_amount, ask, ask_amount = _quote(market, inst, at, mark)
    open_ = now < inst.expiry_ms
    band = 0.5 * mark if inst.is_option else 0.025 * mark
    out: dict = {
        "best_ask_amount": ask_amount if open_ else 0.0,
        "best_ask_price": ask if open_ else None,
        "best_bid_amount": bid_amount if open_ and bid is not None else 0.0,
        "best_bid_price": bid if open_ else None,
    }
    if inst.is_perpetual:
        out["current_funding"], out["funding_8h"] = _current_funding(market, inst, at)
    out["estimated_delivery_price"] = index
    out["index_price"] = index
    out["instrument_name"] = inst.name
    if inst.is_perpetual:
        out["interest_value"] = round(1.0 + (at - market.config.start_ms) / YEAR_MS * 0.1, 12)
    out["last_price"] = stats["last"]
    out["mark_price"] = mark
    out["min_price"] = max(market.round_price(inst, mark - band), inst.tick)
    out["max_price"] = max(market.round_price(inst, mark + band), out["min_price"])
    out["open_interest"] = _open_interest(market, inst, at) if open_ else 0.0
    if open_:
        out["settlement_price"] = _settlement(market, inst, at)
    else:
        out["delivery_price"] = round(market.delivery_price(inst.currency, inst.expiry_ms), 2)
    out["state"] = "open" if open_ else "closed"
    stats_out = {
        "high": stats["high"],
        "low": stats["low"],
        "price_change": stats["price_change"],
        "volume": stats["volume"],
        "volume_usd": stats["volume_usd"],
    }
    out["stats"] = stats_out
    out["timestamp"] = at
    if inst.is_option:
        out.update(option_view(market, inst, at, bid, ask))
    return out


def book_summary(market: SimMarket, inst: Instrument, now: int, view: ChainView | None = None, i: int = 0) -> dict:
    """One get_book_summary_by_* row (an option's marks from `view`, row `i`, when the chain was computed)."""
    at = min(now, inst.expiry_ms - 1)
    if inst.is_option and view is None:
        view = chain_view(market, [inst], at)
    mark = float(view.mark[i]) if inst.is_option else market.mark_price(inst, at)
    stats = _stats(market, inst, at)
    bid, _, ask, _ = _quote(market, inst, at, mark)
    index = market.paths[inst.currency].index_at(at)
    if inst.is_option:
        mid = round(((bid or 0.0) + ask) / 2, 5) if bid is not None else None
    else:
        mid = market.round_price(inst, (bid + ask) / 2)
    out: dict = {
        "volume": stats["volume"],
        "volume_usd": stats["volume_usd"],
        "quote_currency": inst.currency if inst.is_option else "USD",
        "price_change": stats["price_change"],
        "open_interest": _open_interest(market, inst, at),
        "mid_price": mid,
        "mark_price": mark,
        "low": stats["low"],
        "last": stats["last"],
        "instrument_name": inst.name,
        "high": stats["high"],
        "estimated_delivery_price": index,
        "creation_timestamp": now,
        "bid_price": bid,
        "base_currency": inst.currency,
        "ask_price": ask,
    }
    if not inst.is_option:
        out["volume_notional"] = stats["volume_usd"]
    if inst.is_perpetual:
        out["current_funding"], out["funding_8h"] = _current_funding(market, inst, at)
    if inst.is_option:
        out["underlying_index"] = view.underlying_index(market, i)
        out["underlying_price"] = float(view.forward[i])
        out["interest_rate"] = 0.0
        out["mark_iv"] = float(view.mark_iv[i])
    return out


def book_summaries(market: SimMarket, insts: list[Instrument], now: int) -> list[dict]:
    """get_book_summary_by_currency: every instrument's row, the options' marks computed as one chain."""
    options = [i for i in insts if i.is_option]
    view = chain_view(market, options, now) if options else None
    row = {inst.name: j for j, inst in enumerate(options)}
    return [
        book_summary(market, inst, now, view, row[inst.name]) if inst.is_option else book_summary(market, inst, now)
        for inst in insts
    ]


def order_book(market: SimMarket, inst: Instrument, now: int, depth: int) -> dict:
    """public/get_order_book: ticker fields plus `depth` levels a side and a change id."""
    out = ticker(market, inst, now)
    out.pop("greeks", None)
    bids, asks = [], []
    if out["state"] == "open":
        for level in range(depth):
            if out["best_bid_price"] is None:  # an option without a bid: asks only
                asks.append(
                    [
                        market.round_price(inst, out["best_ask_price"] + inst.tick * (1 + 2 * level) * level),
                        out["best_ask_amount"] if level == 0 else _depth_size(market, inst, 67, now, level),
                    ]
                )
                continue
            step = inst.tick * (1 + level) if not inst.is_option else inst.tick * (1 + 2 * level)
            bid = market.round_price(inst, out["best_bid_price"] - step * level)
            if bid > 0:
                bids.append([bid, out["best_bid_amount"] if level == 0 else _depth_size(market, inst, 66, now, level)])
            asks.append(
                [
                    market.round_price(inst, out["best_ask_price"] + step * level),
                    out["best_ask_amount"] if level == 0 else _depth_size(market, inst, 67, now, level),
                ]
            )
    out["change_id"] = now // 100 - market.config.start_ms // 100
    out["bids"] = bids
    out["asks"] = asks
    return out


def _depth_size(market: SimMarket, inst: Instrument, side: int, now: int, level: int) -> float:
    u = unit(market.config.seed, text_key(inst.name), side, now // 1000, level)
    return round(inst.lot * (1 + int(300 * u)), 8)
