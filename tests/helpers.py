"""Helpers shared by test modules (import as `from helpers import ...`)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql


def run_cli(*args: str, env: dict[str, str | None] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `deribit-ts` ARGS in a process of its own, as a user would (an env value of None unsets the variable).

    The process is forked from a server that has the package and ccxt imported already (tests/cli_forkserver.py):
    a second of CPU less per command line. DERIBIT_TS_TEST_FORKSERVER=0 starts the console script instead."""
    full_env = {key: value for key, value in {**os.environ, **(env or {})}.items() if value is not None}
    if os.environ.get("DERIBIT_TS_TEST_FORKSERVER") == "0":
        return subprocess.run(cli_command(*args), capture_output=True, text=True, env=full_env, timeout=timeout)
    return _FORK_SERVER.run(cli_command(*args), full_env, timeout)


class _ForkServer:
    """The fork server of this test process, started on first use and ended with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._dir = ""

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        deadline = time.monotonic() + timeout
        out_dir = tempfile.mkdtemp(prefix="cli-", dir=self._started())
        try:
            paths = {"stdout": os.path.join(out_dir, "out"), "stderr": os.path.join(out_dir, "err")}
            request = {"argv": argv, "env": env, "cwd": os.getcwd(), **paths}
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(30)
                conn.connect(os.path.join(self._dir, "socket"))
                conn.sendall(json.dumps(request).encode() + b"\n")
                with conn.makefile("rb") as replies:
                    pid = int(replies.readline())
                    conn.settimeout(max(deadline - time.monotonic(), 0.01))
                    try:
                        code = int(replies.readline())
                    except TimeoutError:
                        with contextlib.suppress(ProcessLookupError):  # (it may have ended just now)
                            os.kill(pid, signal.SIGKILL)  # as subprocess.run does at its timeout
                        raise subprocess.TimeoutExpired(argv, timeout, *self._outputs(paths)) from None
            return subprocess.CompletedProcess(argv, code, *self._outputs(paths))
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    @staticmethod
    def _outputs(paths: dict[str, str]) -> tuple[str, str]:
        """What the command wrote to stdout and stderr."""
        return Path(paths["stdout"]).read_text(), Path(paths["stderr"]).read_text()

    def _started(self) -> str:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._dir = tempfile.mkdtemp(prefix="deribit-ts-forkserver-")
                script = str(Path(__file__).with_name("cli_forkserver.py"))
                self._process = subprocess.Popen(
                    [sys.executable, script, os.path.join(self._dir, "socket")],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert self._process.stdout is not None
                ready = self._process.stdout.readline()
                assert ready == "ready\n", f"the CLI fork server did not start: {ready!r}"
                atexit.register(self._stop, self._process, self._dir)
            return self._dir

    @staticmethod
    def _stop(process: subprocess.Popen, directory: str) -> None:
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


_FORK_SERVER = _ForkServer()


def cli_command(*args: str) -> list[str]:
    """The argv that runs `deribit-ts` with these arguments (for tests that manage the process themselves)."""
    exe = shutil.which("deribit-ts", path=str(Path(sys.executable).parent)) or "deribit-ts"
    return [exe, *args]


def create_database(server_dsn: str, label: str) -> str:
    name = f"test_{label}_{uuid.uuid4().hex[:8]}".lower()
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}{}").format(sql.Identifier(name), sql.SQL(_copy_strategy(conn))))
    return name


def clone_database(server_dsn: str, template: str, label: str, timeout_s: float = 30) -> str:
    """A new database copied from ``template`` (CREATE DATABASE ... TEMPLATE). Nobody may be connected to the
    template meanwhile: retried briefly, because a server whose background workers visit every database
    (TimescaleDB's job scheduler on the Community edition) may hold it open for a moment."""
    name = f"test_{label}_{uuid.uuid4().hex[:8]}".lower()
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
            sql.Identifier(name), sql.Identifier(template), sql.SQL(_copy_strategy(conn))
        )
        while True:
            try:
                conn.execute(statement)
                return name
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _copy_strategy(conn: psycopg.Connection) -> str:
    """Copy a template's files when the server does not fsync them (the suite's own cluster): about 0.05 s of CPU
    a clone and its drop, against 0.45 s with PostgreSQL 15's default of writing every page through the WAL."""
    if conn.info.server_version < 150000 or conn.execute("SHOW fsync").fetchone()[0] != "off":
        return ""
    return " STRATEGY FILE_COPY"


def drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def backfill(dsn: str, api_url: str, *args: str, env: dict | None = None, timeout: float = 600) -> dict:
    """`deribit-ts backfill ARGS --json` against a simulator without the client's rate limiter (env adds to or
    overrides that); asserts that it exited 0 and returns its JSON summary."""
    result = run_cli(
        "backfill",
        *args,
        "--json",
        "--dsn",
        dsn,
        "--api-url",
        api_url,
        env={"DERIBIT_TS_RATE_LIMIT_SCALE": "off", **(env or {})},
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def backfill_candles(dsn: str, api_url: str, *selection: str, since: datetime, until: datetime, timeout: float) -> dict:
    """`deribit-ts backfill candles SELECTION --since --until`, asserted to end ok (see backfill())."""
    args = ("candles", *selection, "--since", since.isoformat(), "--until", until.isoformat())
    summary = backfill(dsn, api_url, *args, timeout=timeout)
    assert summary["status"] == "ok", summary
    return summary


def wanted_candles(dsn: str) -> dict[str, tuple[datetime, datetime]]:
    """Each key's wanted range of candles (deribit_ts.targets), as the backfill recorded it."""
    with psycopg.connect(dsn) as conn:
        return {
            key: (lo, hi)
            for key, lo, hi in conn.execute(
                "SELECT key, lower(wanted), upper(wanted) FROM deribit_ts.targets WHERE dataset = 'candles'"
            )
        }
