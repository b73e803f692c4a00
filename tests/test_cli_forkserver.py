"""The tests' fork server (tests/cli_forkserver.py) runs a command line as the console script does."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse

import pytest
from helpers import run_cli


def both(*args: str, env: dict[str, str | None] | None = None) -> tuple:
    """(forked, console script) results of one command line, as (exit status, stdout, stderr)."""
    results = []
    for way in ("1", "0"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DERIBIT_TS_TEST_FORKSERVER", way)
            result = run_cli(*args, env=env)
        results.append((result.returncode, result.stdout, result.stderr))
    return tuple(results)


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


def test_a_command_past_its_timeout_is_killed(monkeypatch):
    monkeypatch.setenv("DERIBIT_TS_TEST_FORKSERVER", "1")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        run_cli("sim", "serve", "--port", "0", timeout=2)
    assert time.monotonic() - started < 30
    url = urllib.parse.urlsplit((raised.value.output or "").strip())  # what it printed before the timeout is kept
    assert url.hostname == "127.0.0.1", raised.value.output
    deadline = time.monotonic() + 10
    while True:  # the server it started is gone with it
        try:
            socket.create_connection((url.hostname, url.port), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "the command still serves after its timeout"
        time.sleep(0.1)
