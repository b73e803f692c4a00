"""Secrets never printed: one masking function, config.mask_password, used by every message, log line
and displayed DSN or URL, including text that comes back from libraries (psycopg quotes what it cannot parse).

The CLI test feeds passwords through every command that takes a DSN or an API URL (walked from the Typer app, so
a new command is covered by itself) and asserts they reach neither stdout, stderr nor a log file.
"""

from __future__ import annotations

import logging
import socket
import urllib.parse

import cli_inprocess
import pytest
from helpers import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from deribit_ts import cli
from deribit_ts.config import mask_password, remember_secrets
from deribit_ts.errors import UsageError
from deribit_ts.validate import api_url, dsn

invoke = cli_inprocess.invoke  # the fixture

SECRET = "Sup3rS3cretPw"

# Commands whose purpose is to print the DSN in use, password included (documented in their --help).
PRINTS_THE_DSN_BY_DESIGN = {("db", "url")}
NOT_IN_PROCESS = {("db", "psql"), ("sim", "serve")}  # exec psql / serve until stopped: neither takes these
RUNS_UNTIL_STOPPED_S = 3.0  # e.g. `collect`, which retries an unreachable database until stopped


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = closed_port()
DSNS = [
    f"postgresql://:{SECRET}@127.0.0.1:{PORT}/db",  # empty user
    f"postgresql://u:{SECRET}@127.0.0.1:{PORT}/db",
    f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{PORT}/db",  # SQLAlchemy's spelling: libpq cannot parse it
    f"mysql://u:{SECRET}@127.0.0.1:{PORT}/db",
    f"postgresql://u:{SECRET}%ZZ@127.0.0.1:{PORT}/db",  # a bad escape: psycopg quotes the password alone
    f"postgresql://u:{SECRET}@with@127.0.0.1:{PORT}/db",  # an unescaped '@' in the password
    f"host=127.0.0.1 port={PORT} user=u password={SECRET}",
    f"host=127.0.0.1 port={PORT} user=u password='{SECRET} x'",
    f"host=127.0.0.1 port={PORT} password={SECRET} bogus",
    f"postgresql://u:{SECRET}@127.0.0.1:99999/db",
    f"postgresql://u:{SECRET}@[::1/db",
]
API_URLS = [
    f"http://user:{SECRET}@127.0.0.1:{PORT}",
    f"http://:{SECRET}@127.0.0.1:{PORT}",
    f"http://user:{SECRET}@127.0.0.1:99999",
    f"http://user:{SECRET}@[::1",
    f"ftp://user:{SECRET}@127.0.0.1",
    f"https://user:{SECRET}@127.0.0.1:{PORT}/api/v2?x=1",
]


def leaves_with(option: str) -> list[tuple[str, ...]]:
    import typer

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs is None:
            takes = any(option in getattr(p, "opts", ()) for p in command.params)
            return [tuple(path)] if takes and tuple(path) not in NOT_IN_PROCESS else []
        return [leaf for name, sub in sorted(subs.items()) for leaf in walk(sub, [*path, name])]

    return walk(typer.main.get_command(cli.app), [])


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://:{SECRET}@h/db",
        f"postgresql://u:{SECRET}@h/db",
        f"password={SECRET}",
        f"PASSWORD = '{SECRET}'",
        f"PGPASSWORD={SECRET}",
        f"{{'password': '{SECRET}'}}",
        f'"password": "{SECRET}"',
        f"http://u:{SECRET}@h:1/x",
        f'missing "=" after "postgresql+psycopg://u:{SECRET}@h/db" in connection info string',
        f"postgresql://u:{SECRET}@more@h/db",
    ],
)
def test_mask_password_hides_every_form(text):
    masked = mask_password(text)
    assert SECRET not in masked and "****" in masked


def test_mask_password_takes_anything():
    assert mask_password(None) is None
    assert mask_password("") == ""
    assert mask_password(42) == "42"
    assert SECRET not in mask_password(f"postgresql://u:{SECRET}@h/db".encode())
    assert SECRET not in mask_password(ValueError(f"bad password={SECRET}"))
    assert mask_password("no secrets here: host=h port=5432") == "no secrets here: host=h port=5432"


def test_a_remembered_password_is_hidden_wherever_it_appears():
    with pytest.raises(UsageError) as refused:
        dsn("postgresql://u:RememberMe%ZZ@127.0.0.1/db")
    assert "RememberMe" not in str(refused.value)
    assert "RememberMe" not in mask_password('invalid percent-encoded token: "RememberMe%ZZ"')
    with pytest.raises(UsageError) as refused:
        api_url("http://user:AlsoMe@[::1")
    assert "AlsoMe" not in str(refused.value)


@settings(max_examples=200, deadline=None)
@given(password=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=3, max_size=40))
def test_any_password_in_a_dsn_or_url_is_hidden(password):
    for text in (
        f"postgresql://user:{password}@127.0.0.1:5432/db",
        f"http://user:{password}@127.0.0.1:8765",
        f"postgresql://:{urllib.parse.quote(password)}@h/db",
        f"host=h password='{password}'",
    ):
        remember_secrets(text)
        for message in (text, f"cannot connect to {text}: refused", f'token: "{password}"'):
            assert password not in mask_password(message), (text, mask_password(message))


@pytest.fixture
def show(invoke, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DERIBIT_TS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DERIBIT_TS_MAX_RETRIES", "0")
    monkeypatch.setenv("DERIBIT_TS_RATE_LIMIT_SCALE", "off")
    for name in ("DERIBIT_TS_DSN", "DERIBIT_TS_API_URL"):
        monkeypatch.delenv(name, raising=False)
    log_file = tmp_path / "log"
    handler = logging.FileHandler(log_file)  # a plain handler: records must arrive masked already
    loggers = [logging.getLogger(name) for name in ("deribit_ts", "psycopg", "ccxt", "aiohttp", "asyncio")]
    for logger in loggers:
        logger.addHandler(handler)

    def run(argv: list[str]) -> str:
        outcome = invoke(argv, RUNS_UNTIL_STOPPED_S)
        handler.flush()
        return f"exit {outcome.code}\nstdout: {outcome.out}\nstderr: {outcome.err}\nlog: {log_file.read_text()}"

    yield run
    for logger in loggers:
        logger.removeHandler(handler)
    handler.close()


@pytest.mark.parametrize("command", leaves_with("--dsn"), ids=" ".join)
def test_no_command_prints_a_dsn_password(command, show, monkeypatch):
    if command in PRINTS_THE_DSN_BY_DESIGN:
        pytest.skip("prints the DSN in use, password included, by design")
    for value in DSNS:
        for argv, env in (
            ([*command, "--dsn", value, "-q"] if "backfill" in command else [*command, "--dsn", value], None),
            (["-vv", *command], value),
        ):
            if env is None:
                monkeypatch.delenv("DERIBIT_TS_DSN", raising=False)
            else:
                monkeypatch.setenv("DERIBIT_TS_DSN", env)
            shown = show(argv)
            assert SECRET not in shown, f"{argv}: {shown[:2000]}"


@pytest.mark.parametrize("command", leaves_with("--api-url"), ids=" ".join)
def test_no_command_prints_an_api_url_password(command, show, db, monkeypatch):
    monkeypatch.setenv("DERIBIT_TS_DSN", db)
    for value in API_URLS:
        shown = show(["-vv", *command, "--api-url", value])
        assert SECRET not in shown, f"{command} --api-url {value}: {shown[:2000]}"
        assert "Traceback" not in shown and "internal error" not in shown, shown[:2000]


def test_config_masks_the_api_url_and_the_dsn(show):
    shown = show(["config", "--json", "--dsn", DSNS[0], "--api-url", API_URLS[0]])
    assert "exit 0" in shown and SECRET not in shown and "****" in shown, shown


def test_through_the_real_entry_point(tmp_path):
    # The case that once leaked, as a user runs it: the empty-user DSN's password in no output.
    for args in (
        ["config", "--dsn", DSNS[0]],
        ["runs", "--dsn", DSNS[0]],
        ["db", "status", "--dsn", DSNS[0]],
        ["db", "up", "--dsn", DSNS[0]],
        ["runs", "--dsn", DSNS[4]],
    ):
        result = run_cli(*args, env={"DERIBIT_TS_HOME": str(tmp_path)})
        assert SECRET not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
