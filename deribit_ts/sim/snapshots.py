"""Point-in-time views of an instrument: ticker, book summary and order book, consistent with candles and index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deribit_ts.sim.calendar import Instrument
from deribit_ts.sim.paths import DAY_MS, HOUR_MS, YEAR_MS
from deribit_ts.sim.pricing import greeks, smile_vol
from deribit_ts.sim.seeds import text_key, unit

if TYPE_CHECKING:
    from deribit_ts.sim.market import SimMarket

_SETTLEMENT_HOUR = 8


def _stats(market: SimMarket, inst: Instrument, at: int) -> dict:
    """24-hour statistics from the 1-minute candles served at `at`."""
    c = market.candles(inst.name, at - DAY_MS, at, "1", now_ms=at)
    if not c["ticks"]:
        return {"volume": 0.0, "volume_usd": 0.0, "high": None, "low": None, "price_change": None,
                "last": None, "first": None}
    volume = round(sum(c["volume"]), 8)
    traded = [i for i, v in enumerate(c["volume"]) if v > 0]
    high = max(c["high"][i] for i in traded) if traded else None
    low = min(c["low"][i] for i in traded) if traded else None
    first, last = c["open"][0], c["close"][-1]
    change = round((last / first - 1.0) * 100.0, 4) if first else None
    if inst.is_option:
        volume_usd = round(volume * market.paths[inst.currency].index_at(at), 2)
    else:
        volume_usd = round(sum(c["cost"]), 2)
    return {"volume": volume, "volume_usd": volume_usd, "high": high, "low": low, "price_change": change,
            "last": last, "first": first}


def _quote(market: SimMarket, inst: Instrument, at: int, mark: float) -> tuple[float, float, float, float]:
    """(bid, bid amount, ask, ask amount) around the mark, varying by the second."""
    second = at // 1000
    key = text_key(inst.name)
    seed = market.config.seed
    ticks_away = 1 + int(3 * unit(seed, key, 60, second))
    if inst.is_option:
        spread = max(inst.tick, round(mark * 0.02 / inst.tick) * inst.tick)
    else:
        spread = inst.tick * ticks_away
    bid = market.round_price(inst, mark - spread / 2)
    ask = market.round_price(inst, max(bid + inst.tick, mark + spread / 2))
    bid = max(bid, inst.tick) if inst.is_option else bid
    size = lambda k: round(inst.lot * (1 + int(400 * unit(seed, key, k, second) ** 3)), 8)  # noqa: E731
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


def option_view(market: SimMarket, inst: Instrument, at: int) -> dict:
    """Option-only ticker fields: underlying, IVs, greeks."""
    paths = market.paths[inst.currency]
    t = min(at, inst.expiry_ms)
    years = max(inst.expiry_ms - t, 0) / YEAR_MS
    forward = market.forward(inst.currency, inst.expiry_ms, t)
    vol = smile_vol(paths.atm_vol_at(t), forward, inst.strike, years)
    future = market.catalogue.get(inst.future_name, at)
    return {
        "underlying_index": inst.future_name if future is not None else f"SYN.{inst.future_name}",
        "underlying_price": round(forward, 2),
        "interest_rate": 0.0,
        "mark_iv": round(vol * 100, 2),
        "bid_iv": round(vol * 100 - 1.0 - 0.5 * unit(market.config.seed, text_key(inst.name), 64, at // 1000), 2),
        "ask_iv": round(vol * 100 + 1.0 + 0.5 * unit(market.config.seed, text_key(inst.name), 65, at // 1000), 2),
        "greeks": greeks(inst.option_type == "call", forward, inst.strike, years, vol),
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
        "best_bid_amount": bid_amount if open_ else 0.0,
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
    out["max_price"] = market.round_price(inst, mark + band)
    out["min_price"] = max(market.round_price(inst, mark - band), inst.tick)
    out["open_interest"] = _open_interest(market, inst, at) if open_ else 0.0
    if open_:
        out["settlement_price"] = _settlement(market, inst, at)
    else:
        out["delivery_price"] = round(market.delivery_price(inst.currency, inst.expiry_ms), 2)
    out["state"] = "open" if open_ else "closed"
    stats_out = {"high": stats["high"], "low": stats["low"], "price_change": stats["price_change"],
                 "volume": stats["volume"], "volume_usd": stats["volume_usd"]}
    out["stats"] = stats_out
    out["timestamp"] = at
    if inst.is_option:
        view = option_view(market, inst, at)
        g = view.pop("greeks")
        out.update(view)
        out["greeks"] = {"delta": g.delta, "gamma": g.gamma, "vega": g.vega, "theta": g.theta, "rho": g.rho}
    return out


def book_summary(market: SimMarket, inst: Instrument, now: int) -> dict:
    """One get_book_summary_by_* row."""
    at = min(now, inst.expiry_ms - 1)
    mark = market.mark_price(inst, at)
    stats = _stats(market, inst, at)
    bid, _, ask, _ = _quote(market, inst, at, mark)
    index = market.paths[inst.currency].index_at(at)
    out: dict = {
        "volume": stats["volume"],
        "volume_usd": stats["volume_usd"],
        "quote_currency": inst.currency if inst.is_option else "USD",
        "price_change": stats["price_change"],
        "open_interest": _open_interest(market, inst, at),
        "mid_price": market.round_price(inst, (bid + ask) / 2) if not inst.is_option else round((bid + ask) / 2, 5),
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
        view = option_view(market, inst, at)
        view.pop("greeks")
        for key in ("underlying_index", "underlying_price", "interest_rate", "mark_iv"):
            out[key] = view[key]
    return out


def order_book(market: SimMarket, inst: Instrument, now: int, depth: int) -> dict:
    """public/get_order_book: ticker fields plus `depth` levels a side and a change id."""
    out = ticker(market, inst, now)
    out.pop("greeks", None)
    bids, asks = [], []
    if out["state"] == "open":
        for level in range(depth):
            step = inst.tick * (1 + level) if not inst.is_option else inst.tick * (1 + 2 * level)
            bid = market.round_price(inst, out["best_bid_price"] - step * level)
            if bid > 0:
                bids.append([bid, out["best_bid_amount"] if level == 0 else _depth_size(market, inst, 66, now, level)])
            asks.append([market.round_price(inst, out["best_ask_price"] + step * level),
                         out["best_ask_amount"] if level == 0 else _depth_size(market, inst, 67, now, level)])
    out["change_id"] = now // 100 - market.config.start_ms // 100
    out["bids"] = bids
    out["asks"] = asks
    return out




def _depth_size(market: SimMarket, inst: Instrument, side: int, now: int, level: int) -> float:
    u = unit(market.config.seed, text_key(inst.name), side, now // 1000, level)
    return round(inst.lot * (1 + int(300 * u)), 8)
