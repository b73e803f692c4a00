"""Helpers shared by test modules (import as `from helpers import ...`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql


def run_cli(*args: str, env: dict[str, str | None] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed `deribit-ts` console script as a user would (an env value of None unsets the variable)."""
    full_env = {key: value for key, value in {**os.environ, **(env or {})}.items() if value is not None}
    return subprocess.run(cli_command(*args), capture_output=True, text=True, env=full_env, timeout=timeout)


def cli_command(*args: str) -> list[str]:
    """The argv that runs `deribit-ts` with these arguments (for tests that manage the process themselves)."""
    exe = shutil.which("deribit-ts", path=str(Path(sys.executable).parent)) or "deribit-ts"
    return [exe, *args]


def create_database(server_dsn: str, label: str) -> str:
    name = f"test_{label}_{uuid.uuid4().hex[:8]}".lower()
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def clone_database(server_dsn: str, template: str, label: str, timeout_s: float = 30) -> str:
    """A new database copied from ``template`` (CREATE DATABASE ... TEMPLATE). Nobody may be connected to the
    template meanwhile: retried briefly, because a server whose background workers visit every database
    (TimescaleDB's job scheduler on the Community edition) may hold it open for a moment."""
    name = f"test_{label}_{uuid.uuid4().hex[:8]}".lower()
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        while True:
            try:
                conn.execute(statement)
                return name
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


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
