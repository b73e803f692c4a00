"""The tests' fork server (tests/cli_forkserver.py) runs a command line as the console script does."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from helpers import run_cli


def both(*args: str, env: dict[str, str | None] | None = None) -> tuple:
    """(forked, console script) results of one command line, as (exit status, stdout, stderr)."""
    forked = run_cli(*args, env=env)
    os.environ["DERIBIT_TS_TEST_FORKSERVER"] = "0"
    try:
        started = run_cli(*args, env=env)
    finally:
        del os.environ["DERIBIT_TS_TEST_FORKSERVER"]
    return (forked.returncode, forked.stdout, forked.stderr), (started.returncode, started.stdout, started.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),  # what a command prints, and exit 0
        ("backfill", "candles", "--since", "not-a-time"),  # a usage error's line and status
        ("status", "--dsn", "postgresql://nobody@127.0.0.1:1/none"),  # a failing command's one line and status
    ],
)
def test_a_forked_command_line_ends_as_the_console_script_does(args):
    forked, started = both(*args)
    assert forked == started


def test_the_environment_is_the_requests_own(tmp_path):
    env = {"DERIBIT_TS_HOME": str(tmp_path / "home"), "DERIBIT_TS_API_URL": None, "DERIBIT_TS_WORKERS": "3"}
    forked, started = both("config", "--json", env=env)
    assert forked == started
    shown = json.loads(forked[1])
    assert shown["home"] == str(tmp_path / "home")
    assert shown["workers"] == 3
    assert shown["api_url"] == "https://www.deribit.com"


def test_a_command_past_its_timeout_is_killed():
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        run_cli("sim", "serve", "--port", "0", timeout=2)
    assert time.monotonic() - started < 30
    assert "127.0.0.1" in (raised.value.output or "")  # what it printed before the timeout is kept
