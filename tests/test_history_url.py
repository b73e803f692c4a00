"""Where trades are fetched: --history-url / DERIBIT_TS_HISTORY_URL, else a set API URL, else Deribit's history
host; `deribit-ts config` shows it."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, "https://history.deribit.com"),
        ({"DERIBIT_TS_API_URL": "http://127.0.0.1:8765"}, "http://127.0.0.1:8765"),
        (
            {"DERIBIT_TS_API_URL": "http://127.0.0.1:8765", "DERIBIT_TS_HISTORY_URL": "http://127.0.0.1:9999"},
            "http://127.0.0.1:9999",
        ),
    ],
)
def test_config_shows_the_history_url(env: dict, want: str) -> None:
    unset = {"DERIBIT_TS_API_URL": None, "DERIBIT_TS_HISTORY_URL": None}
    result = run_cli("config", "--json", env={**unset, **env})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["history_url"] == want


def test_the_api_url_flag_is_the_history_url_when_none_is_set() -> None:
    unset = {"DERIBIT_TS_API_URL": None, "DERIBIT_TS_HISTORY_URL": None}
    result = run_cli("--api-url", "http://127.0.0.1:8765", "config", "--json", env=unset)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["history_url"] == "http://127.0.0.1:8765"
