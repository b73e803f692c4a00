"""The command line as a user meets it: help everywhere, settings, one-line errors."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

UNREACHABLE = "postgresql://nobody:secret@127.0.0.1:1/x"


def assert_one_line_failure(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def every_command() -> list[list[str]]:
    """Every group and command of the CLI, walked from the Typer app (a new command is covered by itself)."""
    import typer

    from deribit_ts.cli import app

    def walk(command, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(command, "commands"):  # a group (Typer vendors click, so no isinstance against click)
            for name, sub in sorted(command.commands.items()):
                found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(app), [])


ALL_COMMANDS = every_command()


def test_the_walk_finds_the_whole_cli():
    assert {("backfill", "all"), ("db", "up"), ("sim", "serve"), ("runs",), ("coverage",)} <= set(
        map(tuple, ALL_COMMANDS)
    )


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c) or "deribit-ts")
def test_help_everywhere(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_unreachable_database_is_one_line(tmp_path):
    result = run_cli("db", "status", env={"DERIBIT_TS_DSN": UNREACHABLE, "DERIBIT_TS_HOME": str(tmp_path)})
    assert_one_line_failure(result, "cannot connect to the database", "DERIBIT_TS_DSN")
    assert "secret" not in result.stderr


def test_migrate_unreachable_database_is_one_line(tmp_path):
    result = run_cli("db", "migrate", "--dsn", UNREACHABLE, env={"DERIBIT_TS_HOME": str(tmp_path)})
    assert_one_line_failure(result, "cannot connect to the database")


def test_config_masks_passwords(tmp_path):
    result = run_cli(
        "config",
        "--json",
        env={
            "DERIBIT_TS_DSN": UNREACHABLE,
            "DERIBIT_TS_HOME": str(tmp_path),
            "DERIBIT_TS_API_URL": "http://127.0.0.1:8765/",
        },
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["dsn"] == "postgresql://nobody:****@127.0.0.1:1/x"
    assert shown["api_url"] == "http://127.0.0.1:8765"
    assert "secret" not in result.stdout


def test_migrate_dry_run_prints_the_plan(fresh_db):
    result = run_cli("db", "migrate", "--dry-run", "--dsn", fresh_db)
    assert result.returncode == 0, result.stderr
    assert "0001_schemas.sql" in result.stdout
    assert "10_market_views.sql" in result.stdout
    applied = run_cli("db", "migrate", "--dsn", fresh_db)
    assert applied.returncode == 0, applied.stderr
    again = run_cli("db", "migrate", "--dry-run", "--json", "--dsn", fresh_db)
    assert json.loads(again.stdout) == []


def test_status_of_a_configured_server(db):
    result = run_cli("db", "status", "--json", "--dsn", db)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["server"] == "configured" and status["postgres_version"].startswith("17.")
    assert status["timescaledb_version"] and status["edition"] in ("apache", "timescale")
    assert status["data_size_bytes"] > 1_000_000


def test_unmigrated_database_is_one_line_with_the_fix(fresh_db):
    for command in (["runs"], ["coverage"]):
        result = run_cli(*command, "--dsn", fresh_db)
        assert_one_line_failure(result, "run `deribit-ts db migrate`")


def test_config_shows_every_setting_and_refuses_bad_numbers(tmp_path):
    env = {
        "DERIBIT_TS_HOME": str(tmp_path),
        "DERIBIT_TS_WORKERS": "4",
        "DERIBIT_TS_RATE_LIMIT_SCALE": "0.5",
        "DERIBIT_TS_MAX_RETRIES": "3",
        "DERIBIT_TS_PG_PREFIX": str(tmp_path / "pg"),
    }
    shown = json.loads(run_cli("config", "--json", env=env).stdout)
    assert (shown["workers"], shown["max_retries"], shown["pg_prefix"]) == (4, 3, str(tmp_path / "pg"))
    assert "10 req/s" in shown["rate_limit"]
    assert_one_line_failure(
        run_cli("config", env={**env, "DERIBIT_TS_MAX_RETRIES": "many"}),
        "DERIBIT_TS_MAX_RETRIES='many' is not a whole number",
    )


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DERIBIT_TS_LEADER_LEASE_S", "7", "out of range: give a whole number from 10 to 3600"),
        ("DERIBIT_TS_LEADER_LEASE_S", "soon", "is not a whole number"),
        ("DERIBIT_TS_COLLECT_SUMMARY_S", "0", "out of range"),
    ],
)
def test_collect_refuses_a_bad_lease_or_summary_period_before_it_starts(variable, value, fragment):
    """Both are read while collecting (a standby's check of the leader, the summary line): a bad value is refused
    at start, before the database or the exchange is asked anything (an unreachable one would be named instead).
    A lease under two heartbeats (10 s) would depose a working leader for one slow beat."""
    result = run_cli("collect", "--dsn", UNREACHABLE, "--api-url", "http://127.0.0.1:1", env={variable: value})
    assert_one_line_failure(result, f"{variable}='{value}'", fragment)
    assert result.returncode == 2


@pytest.mark.parametrize("command", [("db", "up"), ("db", "status"), ("config",)])
def test_unusable_home_is_one_line(tmp_path, command):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    result = run_cli(*command, env={"DERIBIT_TS_HOME": str(not_a_directory)})
    assert_one_line_failure(result, "is not a directory", "DERIBIT_TS_HOME")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["backfill", "candles", "--workers", "0"], "Invalid value for '--workers'"),
        (["backfill", "candles", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["sim", "serve", "--port", "99999"], "Invalid value for '--port'"),
        (["runs", "--last", "x"], "Invalid value for '--last'"),
    ],
)
def test_bad_cli_input_is_one_line_with_where_to_look(tmp_path, args, fragment):
    result = run_cli(*args, env={"DERIBIT_TS_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert_one_line_failure(result, "deribit-ts: error: ", fragment, "--help`)")


def test_a_long_error_loses_its_middle_never_what_to_do():
    from deribit_ts.cli import ERROR_LINE_MAX_CHARS, one_line

    message = "lost the database connection: " + "x " * 2000 + "(re-run the same command to resume)"
    line = one_line(message)
    assert line.startswith("lost the database connection: x x")
    assert line.endswith("(re-run the same command to resume)")
    assert "characters cut" in line and len(line) < ERROR_LINE_MAX_CHARS + 40
    assert one_line("short\n\tmessage") == "short message"
