"""A backfill against a hostile exchange: bad values in a reply fail their window's task, with the exchange's words
and the instrument, in one line and a non-zero exit; the other tasks complete; nothing out of range is stored, and
the rollups still refresh. The stand-in (tests/hostile.py) forwards to the simulator and spoils chosen replies.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from helpers import run_cli
from hostile import hostile_exchange

from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.timeutil import to_ms

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off", "DERIBIT_TS_MAX_RETRIES": "2"}


@pytest.fixture(scope="module")
def sim():
    # A small option chain: `backfill candles --currency BTC` below asks for every BTC instrument's candles, and no
    # test here is about options.
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", strikes_per_expiry=2)) as handle:
        yield handle


def backfill(dsn: str, url: str, *args: str):
    return run_cli("backfill", *args, "--quiet", "--dsn", dsn, "--api-url", url, env=NO_LIMITER)


def covers(params: dict, day: datetime) -> bool:
    return int(params["start_timestamp"]) <= to_ms(day) <= int(params["end_timestamp"])


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


@pytest.mark.slow
def test_bad_candles_fail_their_windows_and_every_other_window_is_stored(sim, new_db):
    """Three windows spoiled three ways (two 1e308 highs, a string close, a raw NaN): three tasks fail with the
    exchange's words, the rest complete, no price beyond the bound is stored, ohlcv_1h refreshes."""
    poisoned = {
        "1e308": datetime(2023, 11, 20, tzinfo=UTC),
        "string": datetime(2023, 12, 5, tzinfo=UTC),
        "nan": datetime(2023, 12, 20, tzinfo=UTC),
    }

    def answer(method: str, params: dict, reply: dict):
        if method != "get_tradingview_chart_data" or "result" not in reply:
            return None
        result = reply["result"]
        if covers(params, poisoned["1e308"]):
            result["high"][10] = result["high"][11] = 1e308  # two in one hour
        elif covers(params, poisoned["string"]):
            result["close"][7] = "42000.5"
        elif covers(params, poisoned["nan"]):
            result["open"][3] = float("nan")  # written as NaN: not JSON
        return reply

    since, until = "2023-11-10", "2024-01-01"  # 15 windows of 5,000 candles
    args = ("candles", "--instrument", "BTC-PERPETUAL", "--since", since, "--until", until, "--workers", "4")
    with hostile_exchange(answer, upstream=sim.url) as (url, _):
        result = backfill(new_db, url, *args)
    assert result.returncode != 0
    line = one_line(result)
    assert "3 task(s) failed" in line and "deribit-ts runs" in line, line
    with psycopg.connect(new_db) as conn:
        tasks = conn.execute("SELECT state, range_start, range_end, last_error FROM deribit_ts.tasks").fetchall()
        run_id = conn.execute("SELECT max(run_id) FROM deribit_ts.runs").fetchone()[0]
        highest = conn.execute("SELECT max(high) FROM deribit.candles_1m").fetchone()[0]
    failed = {
        next(kind for kind, day in poisoned.items() if a <= day < b): error
        for state, a, b, error in tasks
        if state == "failed"
    }
    assert set(failed) == set(poisoned), tasks
    assert all(state == "done" for state, *_ in tasks if state != "failed")
    for kind, words in {"1e308": "1e+308", "string": "'42000.5'", "nan": "NaN"}.items():
        assert words in failed[kind] and "instrument_name=BTC-PERPETUAL" in failed[kind], failed[kind]
        assert "cannot reach" not in failed[kind]
    assert highest < 1e9
    shown = run_cli("runs", "--run", str(run_id), "--dsn", new_db)
    assert "1e+308" in shown.stdout and "BTC-PERPETUAL" in shown.stdout, shown.stdout
    refreshed = run_cli("refresh", "--dsn", new_db)
    assert refreshed.returncode == 0, refreshed.stderr
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT max(high) FROM deribit.ohlcv_1h").fetchone()[0] < 1e9

    with hostile_exchange(lambda *_: None, upstream=sim.url) as (url, _):  # it behaves again: the gaps are filled
        again = backfill(new_db, url, *args)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state <> 'done'").fetchone()[0] == 0


SPOILERS = {
    # dataset: (backfill arguments, the method to spoil, how, the words the error must quote)
    "funding": (
        ("funding", "--instrument", "BTC-PERPETUAL", "--since", "2024-02-01", "--until", "2024-02-10"),
        "get_funding_rate_history",
        lambda r: r["result"][5].update(interest_8h=float("inf")),
        "Infinity",
    ),
    "dvol": (
        ("dvol", "--currency", "BTC", "--since", "2024-02-25", "--until", "2024-02-27"),
        "get_volatility_index_data",
        lambda r: r["result"]["data"][2].__setitem__(4, {"close": 50}),
        "an object",
    ),
    "index": (
        ("index", "--index", "btc_usd", "--since", "2024-02-28"),
        "get_index_chart_data",
        lambda r: r["result"][1].__setitem__(1, 1e308),
        "1e+308",
    ),
    "delivery": (
        ("delivery", "--index", "btc_usd", "--since", "2024-01-01"),
        "get_delivery_prices",
        lambda r: r["result"]["data"][0].update(delivery_price=-17.5),
        "-17.5",
    ),
}


@pytest.mark.parametrize("dataset", sorted(SPOILERS))
def test_a_bad_value_of_any_dataset_fails_in_one_line_and_stores_nothing_of_the_reply(sim, new_db, dataset):
    args, method, spoil, words = SPOILERS[dataset]

    def answer(name: str, params: dict, reply: dict):
        if name == method and "result" in reply:
            spoil(reply)
            return reply
        return None

    with hostile_exchange(answer, upstream=sim.url) as (url, _):
        result = backfill(new_db, url, *args)
    assert result.returncode != 0, result.stderr
    line = one_line(result)
    assert "failed" in line, line
    with psycopg.connect(new_db) as conn:
        errors = [e for (e,) in conn.execute("SELECT last_error FROM deribit_ts.tasks WHERE state = 'failed'")]
        stored = {
            "funding": "SELECT count(*) FROM deribit.funding_rate_history WHERE NOT interest_8h < 'Infinity'",
            "dvol": "SELECT count(*) FROM deribit.volatility_index WHERE close > 1e4",
            "index": "SELECT count(*) FROM deribit.index_price_history WHERE price > 1e9",
            "delivery": "SELECT count(*) FROM deribit.delivery_prices WHERE delivery_price < 0",
        }[dataset]
        assert conn.execute(stored).fetchone()[0] == 0
    assert errors and all(words in e and f"public/{method}" in e for e in errors), (errors, result.stderr)
    summary = run_cli("runs", "--json", "--dsn", new_db)
    assert words in json.dumps(json.loads(summary.stdout)), summary.stdout


HOSTILE_NAME = "BTC-\x1b]0;pwned\x07\x1b[2J-\r\nFAKE\u202e"


def test_names_from_the_exchange_are_escaped_in_every_line_printed(sim, new_db):
    """The catalogue lists a future whose name holds an OSC title sequence, a screen clear, \\r, a newline and a
    bidi override; its chart requests fail. Every line printed (the error line, runs, coverage, logs with -v) shows
    the name escaped, never a raw control character."""

    def answer(method: str, params: dict, reply: dict):
        if method == "get_instruments" and params.get("currency") == "BTC" and "result" in reply:
            future = next(
                i for i in reply["result"] if i.get("kind") == "future" and i.get("settlement_period") != "perpetual"
            )
            reply["result"].append({**future, "instrument_name": HOSTILE_NAME, "instrument_id": 999_999})
            return reply
        if params.get("instrument_name") == HOSTILE_NAME:
            return {"jsonrpc": "2.0", "result": {"status": "ok", "ticks": [1], "open": ["\x1b[31mred"]}}
        return None

    with hostile_exchange(answer, upstream=sim.url) as (url, _):
        catalogue = backfill(new_db, url, "instruments", "--currency", "BTC")
        assert catalogue.returncode == 0, catalogue.stderr
        result = run_cli(
            "-v",
            "backfill",
            "candles",
            "--currency",
            "BTC",
            "--since",
            "2024-02-29",
            "--until",
            "2024-03-01",
            "--quiet",
            "--dsn",
            new_db,
            "--api-url",
            url,
            env=NO_LIMITER,
        )
    assert result.returncode != 0
    with psycopg.connect(new_db) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM deribit_ts.runs").fetchone()[0]
    outputs = {
        "backfill": result.stdout + result.stderr,
        "runs": run_cli("runs", "--run", str(run_id), "--dsn", new_db).stdout,
        "coverage": run_cli("coverage", "--dsn", new_db).stdout,
    }
    escaped = "BTC-\\x1b]0;pwned\\x07\\x1b[2J-\\x0d\\x0aFAKE\\u202e"
    for where, text in outputs.items():
        assert not any(c in text for c in "\x1b\x07\r\u202e"), (where, text)
        assert "FAKE" not in text or escaped in text, (where, text)
    assert escaped in outputs["runs"] and escaped in outputs["coverage"], outputs
    assert escaped in outputs["backfill"], outputs["backfill"]
