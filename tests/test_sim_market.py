"""The simulated market: deterministic, internally consistent, with the real data's pathologies."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

import numpy as np
import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import Pathologies, SimMarket, run_in_thread
from deribit_ts.sim.seeds import unit, units
from deribit_ts.sim.trades import candle_of

MINUTE = 60_000
DAY = 86_400_000


def market(**changes) -> SimMarket:
    return SimMarket(sim_config(**changes))


def _chart_bytes(url: str, start: int, end: int, resolution: str = "1") -> bytes:
    query = f"instrument_name=BTC-PERPETUAL&start_timestamp={start}&end_timestamp={end}&resolution={resolution}"
    with urllib.request.urlopen(f"{url}/api/v2/public/get_tradingview_chart_data?{query}") as resp:
        body = resp.read()
    return body[: body.index(b',"usIn"')]  # the timing fields differ by construction


def test_same_seed_same_bytes_other_seed_other_market() -> None:
    start, end = SIM_NOW_MS - 3 * DAY, SIM_NOW_MS
    with run_in_thread(sim_config()) as a, run_in_thread(sim_config()) as b, run_in_thread(sim_config(seed=7)) as c:
        assert _chart_bytes(a.url, start, end) == _chart_bytes(b.url, start, end)
        assert _chart_bytes(a.url, start, end, "60") == _chart_bytes(b.url, start, end, "60")
        assert _chart_bytes(a.url, start, end) != _chart_bytes(c.url, start, end)


def test_candles_are_the_aggregate_of_their_trades() -> None:
    m = market()
    start = SIM_NOW_MS // MINUTE * MINUTE - 3 * 60 * MINUTE
    for name in ("BTC-PERPETUAL", next(i.name for i in m.instruments("BTC", "option"))):
        inst = m.instrument(name)
        candles = m.candles(name, start, SIM_NOW_MS - 20 * MINUTE)
        trades = m.trades(name, start, SIM_NOW_MS, limit=100_000)
        by_minute: dict[int, list] = {}
        for t in trades:
            by_minute.setdefault(t.timestamp // MINUTE * MINUTE, []).append(t)
        for i, tick in enumerate(candles["ticks"]):
            minute = by_minute.get(tick, [])
            if not minute:
                assert candles["volume"][i] == 0 and candles["open"][i] == candles["close"][i - 1 if i else 0]
                continue
            o, h, low, c, v, _ = candle_of(inst, minute)
            assert (candles["open"][i], candles["high"][i], candles["low"][i], candles["close"][i]) == (o, h, low, c)
            assert candles["volume"][i] == pytest.approx(v, abs=1e-8)


def test_higher_resolutions_aggregate_minutes() -> None:
    m = market()
    start = SIM_NOW_MS // DAY * DAY - 2 * DAY
    minutes = m.candles("ETH-PERPETUAL", start, start + DAY - 1)
    daily = m.candles("ETH-PERPETUAL", start, start, "1D")
    assert daily["ticks"] == [start]
    assert daily["open"][0] == minutes["open"][0] and daily["close"][0] == minutes["close"][-1]
    assert daily["high"][0] == max(minutes["high"]) and daily["low"][0] == min(minutes["low"])
    assert daily["volume"][0] == pytest.approx(sum(minutes["volume"]), rel=1e-9)


def test_futures_converge_to_the_index_at_expiry() -> None:
    m = market()
    expired = [i for i in m.instruments("BTC", "future", expired=True)][-3:]
    assert expired
    for inst in expired:
        last = m.candles(inst.name, inst.expiry_ms - 10 * MINUTE, inst.expiry_ms)
        assert last["ticks"][-1] == inst.expiry_ms - MINUTE  # nothing at or after the 08:00 expiry
        index = m.paths["BTC"].index_at(inst.expiry_ms)
        assert abs(last["close"][-1] / index - 1) < 0.003
        early = m.mark_price(inst, inst.creation_ms + DAY)
        assert abs(early / m.paths["BTC"].index_at(inst.creation_ms + DAY) - 1) < 0.2


def test_calendar_names_and_expiries() -> None:
    m = market()
    futures = [i for i in m.instruments("BTC", "future") if not i.is_perpetual]
    for inst in futures:
        day = datetime.fromtimestamp(inst.expiry_ms / 1000, UTC)
        assert day.weekday() == 4 and day.hour == 8 and day.minute == 0
        assert inst.name == f"BTC-{day.day}{day.strftime('%b').upper()}{day:%y}"
    assert any(i.expiry_kind == "quarter" for i in futures) and any(i.expiry_kind == "week" for i in futures)
    options = m.instruments("BTC", "option")
    assert {i.expiry_kind for i in options} == {"day", "week", "month", "quarter"}
    per_expiry = {}
    for o in market(strikes_per_expiry=10).instruments("BTC", "option"):  # the fixed-grid setting
        per_expiry.setdefault(o.expiry_ms, set()).add(o.strike)
    assert all(len(s) == 10 for s in per_expiry.values())  # (tests/test_options_chain_sim.py: the real-sized chain)


def test_nothing_after_now_and_the_forming_candle_moves() -> None:
    m = market()
    now = SIM_NOW_MS  # 12:00:30 -> the 12:00 candle is forming
    c = m.candles("BTC-PERPETUAL", now - 5 * MINUTE, now + DAY)
    assert c["ticks"][-1] == now // MINUTE * MINUTE
    assert m.trades("BTC-PERPETUAL", now, now + DAY) == []
    assert m.funding("BTC-PERPETUAL", now, now + DAY) == []
    later = m.candles("BTC-PERPETUAL", now - 5 * MINUTE, now + DAY, now_ms=now + 29_000)
    final = m.block(m.instrument("BTC-PERPETUAL"), now // DAY)
    j = list(final.ticks).index(now // MINUTE * MINUTE)
    assert later["close"][-1] == final.close[j]  # at 12:00:59 every trade of the minute is in
    assert m.instrument("BTC-PERPETUAL", now_ms=m.config.start_ms - 1) is None


def test_late_correction_revises_a_recent_candle() -> None:
    p = Pathologies(correction_probability=1.0)
    m = market(pathologies=p)
    now = SIM_NOW_MS
    recent = m.candles("BTC-PERPETUAL", now - 5 * MINUTE, now - 2 * MINUTE)
    aged = m.candles("BTC-PERPETUAL", now - 5 * MINUTE, now - 2 * MINUTE, now_ms=now + 20 * MINUTE)
    assert recent["ticks"] == aged["ticks"]
    assert recent["volume"] != aged["volume"]  # re-fetching shows the revision
    clean = market(pathologies=Pathologies(late_corrections=False))
    assert clean.candles("BTC-PERPETUAL", now - 5 * MINUTE, now - 2 * MINUTE) == aged


def test_outages_leave_holes_everywhere() -> None:
    m = market()
    windows = m.outage_windows()
    assert len(windows) == 4
    start, end = windows[0]
    assert end <= SIM_NOW_MS
    c = m.candles("BTC-PERPETUAL", start - 10 * MINUTE, end + 10 * MINUTE)
    assert not [t for t in c["ticks"] if start <= t < end]
    assert len(c["ticks"]) == 21  # ten minutes before, end .. end + 10 min after, none inside
    assert m.index("BTC", start + MINUTE) is None
    off = market(pathologies=Pathologies(outages=False))
    assert off.outage_windows() == []
    assert len(off.candles("BTC-PERPETUAL", start, end - 1)["ticks"]) == (end - start) // MINUTE


def test_filler_candles_switch() -> None:
    name = next(i.name for i in market().instruments("BTC", "option"))
    with_fillers = market().candles(name, SIM_NOW_MS - DAY, SIM_NOW_MS - 60 * MINUTE)
    assert 0 in with_fillers["volume"]
    without = market(pathologies=Pathologies(filler_candles=False)).candles(
        name, SIM_NOW_MS - DAY, SIM_NOW_MS - 60 * MINUTE
    )
    assert without["ticks"] and 0 not in without["volume"]


def test_chart_truncation_keeps_the_configured_end() -> None:
    start, end = SIM_NOW_MS - 10 * DAY, SIM_NOW_MS
    newest = market().truncate(market().candles("BTC-PERPETUAL", start, end))
    assert len(newest["ticks"]) == 5001 and newest["ticks"][-1] == end // MINUTE * MINUTE
    oldest = market(chart_truncate="new", chart_max_candles=100)
    got = oldest.truncate(oldest.candles("BTC-PERPETUAL", start, end))
    assert len(got["ticks"]) == 100 and got["ticks"][0] == start // MINUTE * MINUTE


def test_funding_rows_are_hourly_start_exclusive_end_inclusive() -> None:
    m = market()
    base = SIM_NOW_MS // 3_600_000 * 3_600_000 - 10 * 3_600_000
    rows = m.funding("BTC-PERPETUAL", base, base + 4 * 3_600_000)
    assert [r["timestamp"] for r in rows] == [base + k * 3_600_000 for k in range(1, 5)]
    assert rows[1]["prev_index_price"] == rows[0]["index_price"]
    assert rows[3]["interest_8h"] == pytest.approx(
        sum(r["interest_1h"] for r in m.funding("BTC-PERPETUAL", base - 4 * 3_600_000, base + 4 * 3_600_000))
    )


def test_vectorised_paths_agree_with_the_scalar_ones() -> None:
    periods = np.array([0, 1, 7, 123_456, 2**40], dtype=np.int64)
    assert units(42, 9, 10, last=periods).tolist() == [unit(42, 9, 10, int(p)) for p in periods]
    paths = market().paths["BTC"]
    day = SIM_NOW_MS // DAY - 3
    minutes = paths.premium_minutes(day)
    for i in (0, 1, 59, 60, 61, 777, 1440):  # the curves tickers and funding read, minute by minute
        assert minutes[i] == pytest.approx(paths.premium_at(day * DAY + i * MINUTE), abs=1e-15)
        assert paths.atm_vol_minutes(day)[i] == pytest.approx(paths.atm_vol_at(day * DAY + i * MINUTE), abs=1e-15)
    assert paths.index_at(day * DAY + DAY) == paths.minute_levels(day + 1)[0]  # days join seamlessly


def test_prices_are_whole_ticks_that_print_as_decimals() -> None:
    m = market()
    for inst in (m.instrument("ETH-PERPETUAL"), *m.instruments("BTC", "option")[:20]):
        c = m.candles(inst.name, SIM_NOW_MS - 2 * DAY, SIM_NOW_MS - DAY)
        decimals = len(repr(inst.tick).split(".")[1])
        for price in c["open"] + c["high"] + c["low"] + c["close"]:
            assert type(price) is float and price >= inst.tick
            assert abs(price / inst.tick - round(price / inst.tick)) < 1e-9
            assert len(repr(price).split(".")[1]) <= decimals


def test_funding_value_over_all_history_is_the_sum_of_every_hour() -> None:
    """The widest request (what blocked the server for seconds) against an independent hour-by-hour sum."""
    m = market()
    paths, now = m.paths["BTC"], m.now_ms()
    listed = m.instrument("BTC-PERPETUAL").creation_ms
    outages = m.outage_windows()
    assert any(listed < begin < now for begin, _ in outages)  # the sum must skip them
    expected = 0.0
    for hour in range(listed // 3_600_000 + 1, now // 3_600_000 + 1):
        if not any(begin <= hour * 3_600_000 < end for begin, end in outages):
            expected += paths.interest_1h(hour)
    assert m.funding_value("BTC-PERPETUAL", 0, 99_999_999_999_999) == expected
    some = m.funding("BTC-PERPETUAL", now - 30 * DAY, now)
    assert m.funding_value("BTC-PERPETUAL", now - 30 * DAY, now) == sum(r["interest_1h"] for r in some)
    assert m.funding_value("BTC-PERPETUAL", now, now + DAY) == 0


@pytest.mark.parametrize("cut", ["old", "new"])
def test_wide_capped_answers_equal_the_cut_full_answers(cut: str) -> None:
    """Capped answers read only the end they keep; they must be exactly the full answer, cut (half a year of
    history keeps the full answer cheap to compute here)."""
    short = {"start": datetime(2023, 9, 1, tzinfo=UTC), "chart_truncate": cut, "funding_truncate": cut}
    m = market(**short)
    for resolution in ("1", "30"):
        full = m.truncate(m.candle_arrays("BTC-PERPETUAL", 0, 99_999_999_999_999, resolution))
        capped = m.chart("BTC-PERPETUAL", 0, 99_999_999_999_999, resolution)
        assert len(capped["ticks"]) == m.config.chart_max_candles
        assert all(np.array_equal(capped[c], full[c]) for c in full)
    rows = m.funding("BTC-PERPETUAL", 0, 99_999_999_999_999)
    with run_in_thread(sim_config(**short)) as sim:
        query = "instrument_name=BTC-PERPETUAL&start_timestamp=0&end_timestamp=99999999999999"
        with urllib.request.urlopen(f"{sim.url}/api/v2/public/get_funding_rate_history?{query}") as resp:
            served = json.loads(resp.read())["result"]
    assert served == (rows[:744] if cut == "new" else rows[-744:])
