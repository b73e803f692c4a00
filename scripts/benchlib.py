"""Helpers the benchmarks in scripts/ share: a database server to measure on, fresh migrated databases, the
server's description, and measured child processes. The scripts import it as a sibling module (running
`python scripts/bench_x.py` puts scripts/ first on sys.path):

    from benchlib import database_server, fresh_database, server_version

Every benchmark states the date and the machine it ran on (machine()) and compares against a baseline or a
physical limit measured in the same run, never against a figure from another day.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

# ---------------------------------------------------------------------------------------------------------------------
# The database server and fresh databases on it


@contextmanager
def database_server(dsn: str | None) -> Iterator[tuple[str, str]]:
    """(maintenance DSN, description): the given server, or a private embedded cluster for this run only."""
    if dsn:
        yield dsn, "given server"
        return
    from deribit_ts.config import default_home
    from deribit_ts.db.embedded import Cluster

    prefix = Path(os.environ.get("DERIBIT_TS_PG_PREFIX") or default_home() / "postgres")
    home = Path(tempfile.mkdtemp(prefix="deribit-ts-bench-"))
    cluster = Cluster(home, prefix=prefix)
    try:
        cluster.up(quiet=True)
        yield cluster.url(), "embedded cluster"
    finally:
        cluster.down()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def fresh_database(server_dsn: str, label: str) -> Iterator[str]:
    from deribit_ts.db.migrate import apply_all

    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    try:
        apply_all(dsn)
        yield dsn
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def server_version(server_dsn: str) -> str:
    from deribit_ts.db.connect import connect, server_info

    with connect(server_dsn) as conn:
        info = server_info(conn)
    return f"TimescaleDB {info.timescaledb_version or '?'} ({info.edition}) on PostgreSQL {info.postgres_version}"


# ---------------------------------------------------------------------------------------------------------------------
# The machine, the CLI, measured child processes


def machine() -> dict:
    """When and where a benchmark ran: its figures mean something only next to these."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def cli_path() -> str:
    """The `deribit-ts` console script of the Python running the benchmark (the checkout's .venv)."""
    return str(Path(sys.executable).with_name("deribit-ts"))


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_s: float  # user + system time of the child itself
    peak_rss_mb: float
    machine_busy: float | None  # share of all CPUs busy meanwhile (ours and anybody else's), if known


def run_measured(cmd: list[str], env: dict[str, str]) -> Finished:
    """Run a child to completion: its wall clock and its own peak RSS (wait4, not RUSAGE_CHILDREN's maximum)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began, cpus_before = time.perf_counter(), cpu_times()
        process = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds, cpus_after = time.perf_counter() - began, cpu_times()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        busy = None
        if cpus_before and cpus_after and cpus_after[1] > cpus_before[1]:
            busy = (cpus_after[0] - cpus_before[0]) / (cpus_after[1] - cpus_before[1])
        return Finished(
            process.returncode,
            out.read(),
            err.read(),
            seconds,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            busy,
        )


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat: was the machine shared while a line ran?"""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)
