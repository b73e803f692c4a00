"""`deribit-ts sim serve` as a user meets it: numeric options bounded, contradictory settings refused in one line,
pathologies chosen by name."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from helpers import cli_command, run_cli
from typer.testing import CliRunner

from deribit_ts.cli import app
from deribit_ts.errors import UserError
from deribit_ts.sim import Pathologies


@pytest.mark.parametrize(("option", "value"), [
    ("--port", "99999"), ("--port", "-1"), ("--latency-ms", "-5"), ("--chart-max-candles", "0"),
    ("--fault-rate", "1.5"), ("--fault-rate", "-0.1"), ("--clock-speed", "-2"),
])
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


@pytest.mark.parametrize(("args", "expected"), [
    (["--pathologies", "outages,bad-ticks"], {"filler_candles": False, "outages": True, "bad_ticks": True,
                                              "late_corrections": False}),
    (["--no-pathologies"], dict.fromkeys(("filler_candles", "outages", "bad_ticks", "late_corrections"), False)),
])
def test_served_run_has_the_chosen_pathologies(args: list[str], expected: dict) -> None:
    process = subprocess.Popen(cli_command("sim", "serve", "--port", "0", "--now", "2024-03-01", *args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
        with urllib.request.urlopen(f"{url}/_sim/config", timeout=10) as resp:
            served = json.loads(resp.read())["pathologies"]
        assert {name: served[name] for name in expected} == expected
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(("text", "on"), [
    ("all", {"filler_candles", "outages", "bad_ticks", "late_corrections"}),
    ("none", set()),
    ("filler-candles, late_corrections", {"filler_candles", "late_corrections"}),
    ("fillers,corrections", {"filler_candles", "late_corrections"}),
    ("OUTAGES", {"outages"}),
])
def test_pathology_names(text: str, on: set[str]) -> None:
    chosen = Pathologies.from_names(text)
    assert {n for n in ("filler_candles", "outages", "bad_ticks", "late_corrections") if getattr(chosen, n)} == on


@pytest.mark.parametrize("args", [["--pathologies", "outages,spikes"], ["--pathologies", ","],
                                  ["--pathologies", "outages", "--no-pathologies"]])
def test_bad_pathology_choices_are_user_errors(args: list[str]) -> None:
    """Refused before serving with a UserError (which main() prints as one line, as the --clock-speed test shows)."""
    result = CliRunner().invoke(app, ["sim", "serve", "--port", "0", *args])
    assert isinstance(result.exception, UserError) and "patholog" in str(result.exception)
