"""Hostile input at every edge of the CLI.

Every command and option is walked from the Typer app (a command added later is covered by itself) and given
hostile values: empty, blank, huge, negative, overflowing, non-ASCII, 100 kB, injection-looking. Each invocation
must end in success, or in ONE line on stderr with a non-zero exit: never a traceback, never an "internal error"
(main()'s net for exceptions nobody expected), and, when it fails, nothing written to the database.

Runs in-process (cli.run(argv)) for speed, against a migrated test database (DERIBIT_TS_DSN) and an exchange URL
on a closed loopback port with no retries, so any success path that reaches the exchange fails at once.

For authors of new commands, to keep this passing:
- Check input before writing (deribit_ts/cli/common.py: since_until, names, text; int options with min= and max=).
- A command whose success path runs until stopped (a server, a collector, `--follow`) goes in LONG_RUNNING below:
  there, an invocation still running after LONG_RUNNING_S counts as started (it is interrupted like Ctrl-C).
  Elsewhere, an invocation running longer than HANG_S fails the test as a hang.
- A command that replaces the process (exec) or would act outside the test's sandbox goes in NOT_IN_PROCESS with
  the reason; an option value that must not be tried (e.g. a listen address) goes in SKIP_OPTIONS with the reason.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import cli_inprocess
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deribit_ts import cli

invoke = cli_inprocess.invoke  # the fixture
Outcome = cli_inprocess.Outcome

HOSTILE = [
    "",
    " ",
    "\t",
    "-1",
    "0",
    "99999999999999999999",
    "-99999999999999999999",
    "1e308",
    "nan",
    "9999-12-31T23:59:30",
    "0001-01-01T00:00:00+01:00",
    "é字🙂ß\u202e",
    "x" * 100_000,
    "'; DROP TABLE deribit_ts.runs; --",
    "$(touch /tmp/deribit-ts-pwned)",
    "../../../../etc/passwd",
    "%s%n{0}\\",
    "nul\x00byte",
    "BTC,,ETH",
    "http://user:hostile-secret@127.0.0.1:99999",
]

# Commands whose success path runs until stopped: an invocation still running after LONG_RUNNING_S is a success.
LONG_RUNNING = {("sim", "serve"), ("collect",)}
LONG_RUNNING_S = 1.0
HANG_S = 60.0  # anything else still running after this long is a hang (nothing here should get near it)
# Commands that are checks: these exit codes are their answer (a report, several lines allowed), not an error.
CHECK_EXITS = {("status",): {1}}
# Commands not run in-process, with why.
NOT_IN_PROCESS = {
    ("db", "psql"): "execs psql, replacing the test process (its refusal paths are tested in test_cli.py)",
}
# Options not given hostile values, with why.
SKIP_OPTIONS = {
    ("sim", "serve", "--host"): "a listen address: '0' would listen on every interface",
    ("--install-completion",): "Typer's: writes the user's shell start-up files",
    ("--show-completion",): "Typer's: prints a shell script and exits the process",
}


def leaf_commands() -> list[tuple[tuple[str, ...], object]]:
    import typer

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs is None:
            return [(tuple(path), command)]
        return [leaf for name, sub in sorted(subs.items()) for leaf in walk(sub, [*path, name])]

    return walk(typer.main.get_command(cli.app), [])


def root_command():
    import typer

    return typer.main.get_command(cli.app)


def options_of(command) -> list:
    # (--verbose is there to add lines to stderr: a failure's log lines are not a second error line)
    return [p for p in command.params if getattr(p, "opts", None) and not set(p.opts) & {"--help", "-h", "--verbose"}]


def is_flag(param) -> bool:
    return bool(
        getattr(param, "is_flag", False)
        or getattr(param, "count", False)
        or getattr(getattr(param, "type_descriptor", None), "annotation", None) is bool
    )


LEAVES = leaf_commands()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once this returns: nothing listens there


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Where hostile invocations run. Deeper than any `../` in HOSTILE climbs, so a path value such as
    ../../../../etc/passwd lands inside the sandbox, never on the machine's files (CI runs as root: an
    option that writes a file, e.g. report --html, once overwrote /etc/passwd from the checkout)."""
    deep = tmp_path_factory.mktemp("hostile-cwd") / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    return deep


@pytest.fixture(scope="module")
def sandbox(db: str, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("hostile-home")
    return {
        "DERIBIT_TS_DSN": db,
        "DERIBIT_TS_API_URL": f"http://127.0.0.1:{closed_port()}",
        "DERIBIT_TS_HOME": str(home),
        "DERIBIT_TS_MAX_RETRIES": "0",
        "DERIBIT_TS_RATE_LIMIT_SCALE": "off",
    }


@pytest.fixture
def env(sandbox, workdir, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(workdir)
    for key in [k for k in os.environ if k.startswith("DERIBIT_TS_") and k != "DERIBIT_TS_PG_PREFIX"]:
        monkeypatch.delenv(key)
    for key, value in sandbox.items():
        monkeypatch.setenv(key, value)
    return sandbox


_WATCHERS: dict[str, psycopg.Connection] = {}


def fingerprint(dsn: str) -> dict[str, int]:
    """Row counts of every table of ours: a usage error must leave each unchanged. (One connection kept open:
    this runs after every failed invocation.)"""
    conn = _WATCHERS.get(dsn)
    if conn is None or conn.closed:
        conn = _WATCHERS[dsn] = psycopg.connect(dsn, autocommit=True)
    tables = conn.execute(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname IN ('deribit', 'deribit_ts') ORDER BY 1"
    ).fetchall()
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for (t,) in tables)
    return dict(conn.execute(query).fetchall()) if query else {}


@pytest.fixture(scope="module", autouse=True)
def _close_watchers():
    yield
    for conn in _WATCHERS.values():
        conn.close()
    _WATCHERS.clear()


def problem(
    outcome: Outcome, argv: list[str], before: dict[str, int] | None, dsn: str, long_running: bool, answers: set[int]
) -> str | None:
    """What is wrong with this outcome, or None."""
    try:
        check(outcome, argv, before, dsn, long_running, answers)
    except AssertionError as exc:
        return str(exc).split("\nassert ")[0]
    return None


def check(
    outcome: Outcome,
    argv: list[str],
    before: dict[str, int] | None,
    dsn: str,
    long_running: bool,
    answers: set[int] | frozenset[int] = frozenset(),
) -> None:
    shown = " ".join(a if len(a) < 60 else a[:40] + "..." for a in argv)
    assert "Traceback" not in outcome.err, f"{shown}: traceback\n{outcome.err[-3000:]}"
    assert "internal error" not in outcome.err, f"{shown}: {outcome.err[:1000]}"
    if outcome.timed_out:
        assert long_running, (
            f"`deribit-ts {shown}` still ran after {HANG_S:g} s: make it fail fast, or list the "
            "command in LONG_RUNNING if its success path runs until stopped"
        )
        return
    if outcome.code == 0 or outcome.code in answers:
        return
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{shown}: exit {outcome.code} with {len(lines)} lines on stderr:\n{outcome.err[:3000]}"
    assert lines[0].startswith("deribit-ts: "), f"{shown}: {lines[0][:500]}"
    assert len(lines[0]) < 1200, f"{shown}: an error line of {len(lines[0])} characters"
    if before is not None:
        assert fingerprint(dsn) == before, f"{shown}: exit {outcome.code} but the database changed"


def invocations(path: tuple[str, ...], command) -> list[list[str]]:
    argvs = []
    for param in options_of(command):
        option = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if (*path, option) in SKIP_OPTIONS:
            continue
        if is_flag(param):
            argvs.append([*path, option])
        else:
            argvs += [[*path, option, value] for value in HOSTILE]
    for param in command.params:  # arguments: hostile values in their place
        if not getattr(param, "opts", None) or param.param_type_name == "argument":
            argvs += [[*path, value] for value in HOSTILE if value]
    return argvs


@pytest.mark.slow
@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_option_of_every_command_survives_hostile_values(path, command, env, invoke):
    if path in NOT_IN_PROCESS:
        pytest.skip(NOT_IN_PROCESS[path])
    long_running = path in LONG_RUNNING
    before = fingerprint(env["DERIBIT_TS_DSN"])
    problems = []
    for argv in invocations(path, command):
        outcome = invoke(argv, LONG_RUNNING_S if long_running else HANG_S)
        found = problem(outcome, argv, before, env["DERIBIT_TS_DSN"], long_running, CHECK_EXITS.get(path, set()))
        if found:
            problems.append(found)
            if outcome.timed_out:
                break  # one hang is enough to report: the next values would hang as long
        if outcome.code == 0 or outcome.timed_out:  # a success may write (e.g. `db migrate`): a new baseline
            before = fingerprint(env["DERIBIT_TS_DSN"])
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(p[:600] for p in problems[:30])


def test_global_options_survive_hostile_values(env, invoke):
    before = fingerprint(env["DERIBIT_TS_DSN"])
    for param in options_of(root_command()):
        option = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if (option,) in SKIP_OPTIONS:
            continue
        values = [None] if is_flag(param) else HOSTILE
        for value in values:
            argv = [option, "config"] if value is None else [option, value, "config"]
            check(invoke(argv, HANG_S), argv, before, env["DERIBIT_TS_DSN"], False)


@pytest.mark.parametrize(
    "variable",
    [
        "DERIBIT_TS_DSN",
        "DERIBIT_TS_API_URL",
        "DERIBIT_TS_HISTORY_URL",
        "DERIBIT_TS_HOME",
        "DERIBIT_TS_WORKERS",
        "DERIBIT_TS_MAX_RETRIES",
    ],
)
def test_hostile_environment_variables(variable, env, invoke, monkeypatch):
    before = fingerprint(env["DERIBIT_TS_DSN"])
    for value in HOSTILE:
        if "\x00" in value:
            continue  # (the environment cannot hold a NUL)
        monkeypatch.setenv(variable, value)
        for argv in (["config"], ["backfill", "instruments", "--quiet"]):
            check(invoke(argv, HANG_S), argv, before, env["DERIBIT_TS_DSN"], False)
    monkeypatch.setenv(variable, env.get(variable, "1"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["backfill", "candles", "--since", ""], "empty value is not allowed"),
        (["backfill", "candles", "--until", " "], "empty value is not allowed"),
        (["backfill", "candles", "--instrument", ""], "empty value is not allowed"),
        (["backfill", "candles", "--currency", "BTC,"], "empty name"),
        (["backfill", "index", "--index", ""], "empty value is not allowed"),
        (["backfill", "candles", "--api-url", ""], "empty value is not allowed"),
        (["backfill", "candles", "--until", "9999-12-31T23:59:30"], "out of range"),
        (["backfill", "funding", "--since", "9999-12-31"], "out of range"),
        (["backfill", "index", "--until", "9999-12-31T23:59:30"], "out of range"),
        (["backfill", "candles", "--api-url", "http://127.0.0.1:99999"], "Port out of range"),
        (["backfill", "candles", "--api-url", "http://[::1"], "Invalid IPv6 URL"),
        (["backfill", "candles", "--api-url", "ftp://127.0.0.1:21"], "not an http:// or https:// URL"),
        (["db", "logs", "-n", "99999999999999999999"], "Invalid value for '-n'"),
        (["coverage", "--dataset", "bogus"], "unknown --dataset 'bogus'"),
    ],
)
def test_the_reproductions_of_issue_9_are_one_line_and_write_nothing(args, fragment, env, invoke):
    before = fingerprint(env["DERIBIT_TS_DSN"])
    outcome = invoke(args, HANG_S)
    check(outcome, args, before, env["DERIBIT_TS_DSN"], False)
    assert outcome.code == 2, outcome.err
    assert fragment in outcome.err


def test_a_url_that_cannot_work_fails_at_once(env, invoke, monkeypatch):
    monkeypatch.setenv("DERIBIT_TS_MAX_RETRIES", "8")  # refused before the first request: retries never start
    import time

    started = time.monotonic()
    outcome = invoke(["backfill", "instruments", "--api-url", "http://[::1", "--quiet"], HANG_S)
    assert outcome.code == 2 and time.monotonic() - started < 5, outcome.err


def test_one_parser_per_setting(env, invoke, monkeypatch):
    for value, accepted in (("2.0", False), ("1000", False), ("256", True), ("4", True), ("0", False)):
        monkeypatch.setenv("DERIBIT_TS_WORKERS", value)
        config = invoke(["config"], HANG_S)
        backfill = invoke(["backfill", "instruments", "--quiet"], HANG_S)
        assert (config.code == 0) == accepted, config.err
        assert ("DERIBIT_TS_WORKERS" in backfill.err) != accepted, backfill.err  # refused, or failed later


def test_an_echoed_value_is_cut(env, invoke):
    outcome = invoke(["backfill", "candles", "--instrument", "A" * 100_000], HANG_S)
    assert outcome.code == 2 and len(outcome.err) < 400 and "100,000 characters" in outcome.err, outcome.err


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(max_size=60))
def test_any_time_text_is_accepted_or_refused_in_one_line(value, env, invoke):
    for flag in ("--since", "--until"):
        argv = ["backfill", "funding", flag, value, "--quiet"]
        check(invoke(argv, HANG_S), argv, None, env["DERIBIT_TS_DSN"], False)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(max_size=80))
def test_any_name_list_is_accepted_or_refused_in_one_line(value, env, invoke):
    for flag in ("--currency", "--instrument", "--kind"):
        argv = ["backfill", "candles", flag, value, "--quiet"]
        check(invoke(argv, HANG_S), argv, None, env["DERIBIT_TS_DSN"], False)
