"""`deribit-ts sim serve` as a user meets it: numeric options bounded, contradictory settings refused in one line."""

from __future__ import annotations

import pytest
from helpers import run_cli
from typer.testing import CliRunner

from deribit_ts.cli import app


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
