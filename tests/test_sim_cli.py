"""`deribit-ts sim serve` as a user meets it: numeric options bounded, contradictory settings refused in one line,
pathologies chosen by name."""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import cli_command, run_cli
from typer.testing import CliRunner

from deribit_ts.cli import app
from deribit_ts.errors import UserError
from deribit_ts.exchange.limiter import CreditLimiter
from deribit_ts.sim import Pathologies, SimConfig, run_in_thread
from deribit_ts.sim.config import LATEST, LATEST_MS, MAX_CLOCK_SPEED


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--port", "99999"),
        ("--port", "-1"),
        ("--latency-ms", "-5"),
        ("--chart-max-candles", "0"),
        ("--fault-rate", "1.5"),
        ("--fault-rate", "-0.1"),
        ("--clock-speed", "-2"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(option: str, value: str) -> None:
    result = CliRunner().invoke(app, ["sim", "serve", option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_clock_speed_without_a_fixed_now_is_refused_in_one_line() -> None:
    result = run_cli("sim", "serve", "--port", "0", "--clock-speed", "10", timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--now" in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--pathologies", "outages,bad-ticks"],
            {"filler_candles": False, "outages": True, "bad_ticks": True, "late_corrections": False},
        ),
        (["--no-pathologies"], dict.fromkeys(("filler_candles", "outages", "bad_ticks", "late_corrections"), False)),
    ],
)
def test_served_run_has_the_chosen_pathologies(args: list[str], expected: dict) -> None:
    process = subprocess.Popen(
        cli_command("sim", "serve", "--port", "0", "--now", "2024-03-01", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
        with urllib.request.urlopen(f"{url}/_sim/config", timeout=10) as resp:
            served = json.loads(resp.read())["pathologies"]
        assert {name: served[name] for name in expected} == expected
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("text", "on"),
    [
        ("all", {"filler_candles", "outages", "bad_ticks", "late_corrections"}),
        ("none", set()),
        ("filler-candles, late_corrections", {"filler_candles", "late_corrections"}),
        ("fillers,corrections", {"filler_candles", "late_corrections"}),
        ("OUTAGES", {"outages"}),
    ],
)
def test_pathology_names(text: str, on: set[str]) -> None:
    chosen = Pathologies.from_names(text)
    assert {n for n in ("filler_candles", "outages", "bad_ticks", "late_corrections") if getattr(chosen, n)} == on


@pytest.mark.parametrize(
    "args",
    [["--pathologies", "outages,spikes"], ["--pathologies", ","], ["--pathologies", "outages", "--no-pathologies"]],
)
def test_bad_pathology_choices_are_user_errors(args: list[str]) -> None:
    """Refused before serving with a UserError (which main() prints as one line, as the --clock-speed test shows)."""
    result = CliRunner().invoke(app, ["sim", "serve", "--port", "0", *args])
    assert isinstance(result.exception, UserError) and "patholog" in str(result.exception)


# ------------------------------------------------ settings that start but cannot work are refused


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"now": datetime(9999, 12, 31, tzinfo=UTC)}, "--now 9999-12-31 is outside the simulated years"),
        ({"now": datetime(1969, 1, 1, tzinfo=UTC)}, "--now 1969-01-01 is outside the simulated years"),
        (
            {"start": datetime(2030, 1, 1, tzinfo=UTC), "now": datetime(2024, 1, 1, tzinfo=UTC)},
            "--start 2030-01-01 00:00 is not before --now 2024-01-01",
        ),
        ({"start": datetime(2024, 1, 1, tzinfo=UTC), "now": datetime(2024, 1, 1, tzinfo=UTC)}, "is not before --now"),
        ({"start": datetime(2090, 1, 1, tzinfo=UTC)}, "is not before now"),
        ({"now": datetime(2024, 1, 1, tzinfo=UTC), "clock_speed": 1e308}, "clock speed must be between 0 and"),
        ({"now": datetime(2024, 1, 1, tzinfo=UTC), "clock_speed": math.inf}, "clock speed must be between 0 and"),
        ({"latency_ms": 1e12}, "latency must be between 0 and 600,000 ms"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(changes: dict, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        SimConfig(**changes)


@pytest.mark.parametrize(
    "args",
    [
        ["--now", "9999-12-31"],
        ["--start", "2030-01-01", "--now", "2024-01-01"],
        ["--now", "2024-01-01", "--clock-speed", "1e308"],
        ["--latency-ms", "1e12"],
    ],
)
def test_serve_refuses_them_in_one_line_before_listening(args: list[str]) -> None:
    result = run_cli("sim", "serve", "--port", "0", *args, timeout=60)
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_fast_clock_stops_at_the_end_of_the_simulated_years() -> None:
    """The fastest clock allowed, started just before the end: answers stay answers, never 11094."""
    config = SimConfig(now=LATEST - timedelta(minutes=1), clock_speed=MAX_CLOCK_SPEED, rate_limit="off")
    with run_in_thread(config) as sim:
        time.sleep(0.05)  # 50,000 simulated seconds: past the end
        now_ms = get(sim.url, "public/get_time")
        assert now_ms == LATEST_MS - 1
        chart = get(
            sim.url,
            "public/get_tradingview_chart_data?instrument_name=BTC-PERPETUAL&resolution=1"
            f"&start_timestamp={now_ms - 3_600_000}&end_timestamp={now_ms}",
        )
        assert chart["status"] == "ok" and len(chart["ticks"]) >= 60


def test_every_listed_instrument_has_a_chart() -> None:
    """The market begins before its 'now', so what get_instruments lists, the chart knows."""
    config = SimConfig(start=datetime(2023, 12, 1, tzinfo=UTC), now=datetime(2024, 1, 1, tzinfo=UTC), rate_limit="off")
    with run_in_thread(config) as sim:
        now_ms = get(sim.url, "public/get_time")
        for inst in get(sim.url, "public/get_instruments?currency=BTC&kind=future"):
            chart = get(
                sim.url,
                "public/get_tradingview_chart_data?resolution=60"
                f"&instrument_name={inst['instrument_name']}"
                f"&start_timestamp={now_ms - 86_400_000}&end_timestamp={now_ms}",
            )
            assert chart["status"] in ("ok", "no_data"), inst["instrument_name"]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_host_is_printed_in_brackets_and_answers_there() -> None:
    process = subprocess.Popen(
        cli_command("sim", "serve", "--host", "::1", "--port", "0", "--now", "2024-03-01"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://\[::1\]:\d+", url), url
        assert get(url, "public/get_time") == int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_server_stops_on_a_signal_while_requests_wait_out_their_latency(signum: int) -> None:
    process = subprocess.Popen(
        cli_command("sim", "serve", "--port", "0", "--now", "2024-03-01", "--latency-ms", "600000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        waiting = threading.Thread(target=lambda: _ignore_errors(get, url, "public/get_time"), daemon=True)
        waiting.start()
        time.sleep(1.0)  # the request is inside its 10-minute latency
        process.send_signal(signum)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()


def test_a_rate_limit_scale_that_would_hang_is_refused(db: str) -> None:
    with pytest.raises(UserError, match=r"below 0.01 .*would hang"):
        CreditLimiter.from_env("1e-300")
    assert CreditLimiter.from_env("0.01").scale == 0.01
    with psycopg.connect(db) as conn:
        runs_before = conn.execute("SELECT count(*) FROM deribit_ts.runs").fetchone()
    with run_in_thread(SimConfig(now=datetime(2024, 3, 1, tzinfo=UTC), rate_limit="off")) as sim:
        result = run_cli(
            "backfill",
            "funding",
            "--since",
            "2024-02-28",
            "--dsn",
            db,
            "--api-url",
            sim.url,
            env={"DERIBIT_TS_RATE_LIMIT_SCALE": "1e-300"},
            timeout=120,
        )
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "DERIBIT_TS_RATE_LIMIT_SCALE='1e-300' is below 0.01" in result.stderr
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.runs").fetchone() == runs_before


def get(url: str, path: str):
    with urllib.request.urlopen(f"{url}/api/v2/{path}", timeout=30) as resp:
        return json.loads(resp.read())["result"]


def _ignore_errors(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass  # the server hung up on shutdown: expected
