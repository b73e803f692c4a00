"""The simulator's trade tape: it agrees with the candles, trade_seq is contiguous, and the three trade endpoints
answer with Deribit's semantics (bounds inclusive, count 1-1000, sorting, has_more, by-currency only 24 h back)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict

import pytest
from sim_fixtures import SIM_NOW_MS, sim_config

from deribit_ts.sim import run_in_thread
from deribit_ts.sim.market import SimMarket
from deribit_ts.sim.paths import DAY_MS, MINUTE_MS
from deribit_ts.sim.trades import candle_of

DAY = SIM_NOW_MS // DAY_MS


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(sim_config())


@pytest.fixture(scope="module")
def sim():
    with run_in_thread(sim_config()) as handle:
        yield handle


def call(url: str, method: str, **params) -> tuple[int, dict]:
    query = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
    try:
        with urllib.request.urlopen(f"{url}/api/v2/public/{method}?{query}", timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def first_burst_day(market: SimMarket, name: str) -> int:
    inst = market.instrument(name)
    return next(d for d in range(DAY - 60, DAY) if market.block(inst, d).bursts)


def assert_tape_matches_candles(market: SimMarket, name: str, day: int) -> list:
    inst = market.instrument(name)
    blk, tape = market.block(inst, day), market.day_tape(inst, day)
    by_minute = defaultdict(list)
    for trade in tape:
        by_minute[trade.timestamp // MINUTE_MS * MINUTE_MS].append(trade)
    traded = 0
    for j, tick in enumerate(blk.ticks):
        if blk.volume[j] == 0:
            assert tick not in by_minute
            continue
        traded += 1
        candle = (blk.open[j], blk.high[j], blk.low[j], blk.close[j], blk.volume[j], blk.cost[j])
        assert candle_of(inst, by_minute[tick]) == candle
    assert traded == len(by_minute)
    seqs = [t.trade_seq for t in tape]
    assert seqs == list(range(market.seq_base(inst, day), market.seq_base(inst, day + 1)))
    return tape


def test_tape_is_the_candles_and_seq_is_contiguous(market: SimMarket) -> None:
    option = next(i for i in market.instruments("BTC", "option", now_ms=SIM_NOW_MS) if market.day_tape(i, DAY - 1)).name
    future = next(i for i in market.instruments("BTC", "future", now_ms=SIM_NOW_MS) if not i.is_perpetual).name
    for name in (option, future, "ETH-PERPETUAL"):
        for day in (DAY - 2, DAY - 1):
            assert_tape_matches_candles(market, name, day)
    # a liquidation cascade: thousands of one-lot trades at one millisecond, its candle still their aggregate
    day = first_burst_day(market, "BTC-PERPETUAL")
    tape = assert_tape_matches_candles(market, "BTC-PERPETUAL", day)
    ms, n = Counter(t.timestamp for t in tape).most_common(1)[0]
    assert n >= 1500
    assert {t.liquidation for t in tape if t.timestamp == ms} == {"T"}
    assert any(t.liquidation == "M" for t in tape)
    assert any(t.block_trade_id for d in (DAY - 2, DAY - 1) for t in market.day_tape(market.instrument(future), d))


def test_endpoints(sim, market: SimMarket) -> None:
    day = first_burst_day(market, "BTC-PERPETUAL")
    inst = market.instrument("BTC-PERPETUAL")
    tape = market.day_tape(inst, day)
    ms = Counter(t.timestamp for t in tape).most_common(1)[0][0]
    # count above 1,000 is an error, as is 0
    for bad in (0, 1001):
        status, body = call(
            sim.url, "get_last_trades_by_instrument_and_time", instrument_name=inst.name, start_timestamp=ms, count=bad
        )
        assert status == 400 and body["error"]["code"] == -32602
    # bounds inclusive, default newest first, has_more when more match
    status, body = call(
        sim.url,
        "get_last_trades_by_instrument_and_time",
        instrument_name=inst.name,
        start_timestamp=ms,
        end_timestamp=ms,
        count=1000,
    )
    trades = body["result"]["trades"]
    assert len(trades) == 1000 and body["result"]["has_more"] is True
    assert [t["trade_seq"] for t in trades] == sorted((t["trade_seq"] for t in trades), reverse=True)
    assert {t["timestamp"] for t in trades} == {ms}
    # paging by trade_seq walks through the millisecond exactly
    in_ms = [t.trade_seq for t in tape if t.timestamp == ms]
    got, seq = [], in_ms[0]
    while True:
        status, body = call(
            sim.url,
            "get_last_trades_by_instrument",
            instrument_name=inst.name,
            start_seq=seq,
            end_seq=in_ms[-1],
            count=1000,
            sorting="asc",
        )
        page = body["result"]["trades"]
        got += [t["trade_seq"] for t in page]
        if not body["result"]["has_more"]:
            break
        seq = page[-1]["trade_seq"] + 1
    assert got == in_ms
    # an option's trade carries iv, mark and index from its chain
    option = next(i for i in market.instruments("BTC", "option", now_ms=SIM_NOW_MS) if market.day_tape(i, DAY - 1))
    status, body = call(
        sim.url,
        "get_last_trades_by_instrument_and_time",
        instrument_name=option.name,
        start_timestamp=(DAY - 1) * DAY_MS,
        end_timestamp=DAY * DAY_MS - 1,
        count=1000,
        sorting="asc",
    )
    trades = body["result"]["trades"]
    assert [t["trade_id"] for t in trades] == [t.trade_id for t in market.day_tape(option, DAY - 1)]
    assert all(t["iv"] > 0 and t["mark_price"] > 0 and t["index_price"] > 0 for t in trades)
    # by currency: only the last 24 hours
    status, body = call(
        sim.url,
        "get_last_trades_by_currency_and_time",
        currency="BTC",
        kind="option",
        start_timestamp=SIM_NOW_MS - 3 * DAY_MS,
        end_timestamp=SIM_NOW_MS - 2 * DAY_MS,
        count=10,
    )
    assert body["result"] == {"trades": [], "has_more": False}
    # a start older than 24 hours returns nothing even when the window reaches into them (not a clamped window)
    for hours_back, found in ((25, False), (23, True)):
        status, body = call(
            sim.url,
            "get_last_trades_by_currency_and_time",
            currency="BTC",
            kind="option",
            start_timestamp=SIM_NOW_MS - hours_back * DAY_MS // 24,
            end_timestamp=SIM_NOW_MS,
            count=10,
        )
        assert bool(body["result"]["trades"]) is found, hours_back


def test_trades_per_day_come_back_from_the_disk_cache_unchanged(tmp_path, monkeypatch) -> None:
    """The first trade request of a process counted every day since the perpetual's listing; the counts are kept
    on disk (seqcache) and a later process reads them: the same trade_seq, the same tape, whatever the file."""
    monkeypatch.setenv("DERIBIT_TS_SIM_CACHE", str(tmp_path))
    day = DAY - 3
    cold = SimMarket(sim_config())
    inst = cold.instrument("BTC-PERPETUAL")
    tape = cold.day_tape(inst, day)
    files = list(tmp_path.glob("day-counts-*.npy"))
    assert len(files) == 1
    counted = day - cold._first_day(inst)
    warm = SimMarket(sim_config())
    warm.seq_base(inst, warm._first_day(inst) + 1)  # the first question of a process: the file answers it whole
    assert len(warm._seq_bases[inst.name]) == counted + 1
    assert warm.day_tape(inst, day) == tape
    monkeypatch.setenv("DERIBIT_TS_SIM_CACHE", "off")
    assert SimMarket(sim_config()).day_tape(inst, day) == tape
    assert len(list(tmp_path.glob("*"))) == 1  # off: nothing written
    monkeypatch.setenv("DERIBIT_TS_SIM_CACHE", str(tmp_path))
    files[0].write_bytes(b"not a numpy file")  # unreadable: counted again, and written again
    assert SimMarket(sim_config()).day_tape(inst, day) == tape
    assert SimMarket(sim_config(seed=7)).seq_base(inst, day) != tape[0].trade_seq  # another market, another key
    assert len(list(tmp_path.glob("day-counts-*.npy"))) == 2
