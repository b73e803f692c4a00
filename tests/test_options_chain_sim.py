"""The simulator's option chain: real-sized, on Deribit's calendar, strikes from delta 0.9 to 0.1 at
listing, tickers and book summaries as docs/deribit.md describes them."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime

import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import SimMarket, run_in_thread
from deribit_ts.sim import snapshots as sim_snapshots
from deribit_ts.sim.calendar import delta_strikes
from deribit_ts.sim.pricing import chain_quotes

DAY = 86_400_000
YEAR = 365 * DAY


def call(url: str, method: str, params: dict) -> tuple[int, dict]:
    with urllib.request.urlopen(f"{url}/api/v2/public/{method}?{urllib.parse.urlencode(params)}", timeout=60) as r:
        return r.status, json.loads(r.read())


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    "when", ["2024-01-15T09:00", "2024-03-01T12:00:30", "2024-06-28T07:00", "2025-03-05T16:00", "2025-08-01T08:30"]
)
def test_a_2024_2025_date_lists_a_real_sized_chain_on_deribits_calendar(when: str) -> None:
    m = SimMarket(sim_config(option_strike_density=1.0))
    now = _ms(when)
    for currency in ("BTC", "ETH"):
        options = m.instruments(currency, "option", now_ms=now)
        assert 650 <= len(options) <= 1000, (currency, len(options))
        expiries = Counter()
        for expiry, kind in {(o.expiry_ms, o.expiry_kind) for o in options}:
            expiries[kind] += 1
            assert expiry % DAY == 8 * 3_600_000  # 08:00 UTC
        assert 1 <= expiries["day"] <= 3 and 1 <= expiries["week"] <= 3 and 1 <= expiries["month"] <= 3
        assert 3 <= expiries["quarter"] <= 5 and max(o.expiry_ms for o in options) - now <= YEAR
        assert Counter(o.option_type for o in options) == {"call": len(options) // 2, "put": len(options) // 2}


def test_strikes_cover_delta_0_9_to_0_1_at_listing_denser_near_the_money() -> None:
    for forward, years, vol in ((62_000.0, 7 / 365, 0.55), (3_100.0, 0.5, 0.8), (280.0, 2 / 365, 1.2)):
        strikes = delta_strikes(forward, years, vol)
        n = len(strikes)
        q = chain_quotes([True] * n, [forward] * n, strikes, [years] * n, [vol] * n)
        deltas = q.delta.tolist()
        assert max(deltas) >= 0.9 and min(deltas) <= 0.1  # the range is covered ...
        assert all(0.05 < d < 0.95 for d in deltas)  # ... and not much more
        steps = [b - a for a, b in zip(strikes, strikes[1:], strict=False)]
        near = min(range(n), key=lambda i: abs(deltas[i] - 0.5))
        assert steps[min(near, len(steps) - 1)] < max(steps)  # a finer grid near the money than in the wings
    assert len(delta_strikes(62_000.0, 0.25, 0.55, density=0.25)) < len(delta_strikes(62_000.0, 0.25, 0.55)) / 2


def test_ticker_follows_3_10a_and_book_summary_lists_the_whole_chain() -> None:
    with run_in_thread(sim_config()) as sim:
        m = sim.market
        chain = m.instruments("BTC", "option")
        _, summary = call(sim.url, "get_book_summary_by_currency", {"currency": "BTC", "kind": "option"})
        _, tick = call(sim.url, "ticker", {"instrument_name": chain[len(chain) // 2].name})
        _, expired = call(sim.url, "get_instruments", {"currency": "BTC", "kind": "option", "expired": "true"})
    assert sorted(r["instrument_name"] for r in summary["result"]) == sorted(i.name for i in chain)
    t = tick["result"]
    inst = chain[len(chain) // 2]
    years = (inst.expiry_ms - t["timestamp"]) / YEAR
    q = chain_quotes(
        [inst.option_type == "call"], [t["underlying_price"]], [inst.strike], [years], [t["mark_iv"] / 100]
    )
    assert t["mark_price"] == round(float(q.price_usd[0]) / t["underlying_price"], 8)
    assert t["greeks"] == {
        "delta": round(float(q.delta[0]), 5),
        "gamma": round(float(q.gamma[0]), 5),
        "vega": round(float(q.vega[0]), 5),
        "theta": round(float(q.theta[0]), 5),
        "rho": round(float(q.rho[0]), 5),
    }
    assert t["interest_rate"] == 0.0 and t["underlying_index"] in (inst.future_name, f"SYN.{inst.future_name}")
    # 08:00 expiries within the last 30 days are "recently expired"; older ones are not listed
    ages = [(SIM_NOW_MS - r["expiration_timestamp"]) / DAY for r in expired["result"]]
    assert ages and 0 < min(ages) < 1 and max(ages) <= 30


def test_bid_ivs_price_the_quotes_and_no_bid_means_bid_iv_zero() -> None:
    m = SimMarket(sim_config())
    tickers = [sim_snapshots.ticker(m, i, SIM_NOW_MS) for c in ("BTC", "ETH") for i in m.instruments(c, "option")]
    no_bid = [t for t in tickers if t["best_bid_price"] is None]
    assert no_bid and all(t["bid_iv"] == 0 and t["best_bid_amount"] == 0 for t in no_bid)
    synthetic = {t["underlying_index"] for t in tickers if t["underlying_index"].startswith("SYN.")}
    assert synthetic and {t["underlying_index"] for t in tickers} - synthetic  # dailies: no future of that expiry
    priced = 0
    for t in tickers:
        if t["best_bid_price"] is not None and t["bid_iv"] > 0:  # (0: a bid at or below intrinsic value)
            assert t["bid_iv"] <= t["ask_iv"]
            inst = m.instrument(t["instrument_name"])
            years = (inst.expiry_ms - t["timestamp"]) / YEAR
            bid = (
                chain_quotes(
                    [inst.option_type == "call"], [t["underlying_price"]], [inst.strike], [years], [t["bid_iv"] / 100]
                ).price_usd[0]
                / t["underlying_price"]
            )
            assert math.isclose(bid, t["best_bid_price"], rel_tol=2e-3, abs_tol=2e-6)
            priced += 1
    assert priced > len(tickers) / 2
