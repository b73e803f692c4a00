"""Helpers the benchmarks in scripts/ share: a database server to measure on, fresh migrated databases, the
server's description, measured child processes, and a simulator host in a process of its own. The scripts
import it as a sibling module (running `python scripts/bench_x.py` puts scripts/ first on sys.path):

    from benchlib import database_server, fresh_database, server_version

Every benchmark states the date and the machine it ran on (machine()) and compares against a baseline or a
physical limit measured in the same run, never against a figure from another day.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from deribit_ts.sim import SimConfig, SimMarket

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


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): for a server to start on, or to fail against."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    started_at: float = 0.0  # wall clock (epoch seconds) when the child was started


def run_measured(cmd: list[str], env: dict[str, str]) -> Finished:
    """Run a child to completion: its wall clock and its own peak RSS (wait4, not RUSAGE_CHILDREN's maximum)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began, cpus_before, started_at = time.perf_counter(), cpu_times(), time.time()
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
            started_at,
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


# ---------------------------------------------------------------------------------------------------------------------
# The simulator host: one market served in a child process (the benchmark's own CPU stays apart from it)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def serve_deployments(market: SimMarket, deployments: dict[str, SimConfig], warm_s: float) -> None:
    """Serve one (warmed) market on a port per deployment (e.g. "off": unlimited, "deribit": the exchange's limits
    plus latency), print {"urls": {name: url}, "warm_s": ...} as one line for sim_host(), and serve until killed."""
    from aiohttp import web

    from deribit_ts.sim.server import SimServer

    async def main() -> None:
        urls, runners = {}, []
        for name, config in deployments.items():
            runner = web.AppRunner(SimServer(config, market).app(), access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        print(json.dumps({"urls": urls, "warm_s": round(warm_s, 2)}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


@dataclass
class SimHost:
    process: subprocess.Popen
    urls: dict[str, str]  # per deployment
    warm_s: float  # what warming the market's cache took before it served

    def reset(self, name: str) -> None:
        """Zero the counters and refill the credit pools of one deployment."""
        request = urllib.request.Request(f"{self.urls[name]}/_sim/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    def stats(self, name: str) -> dict:
        with urllib.request.urlopen(f"{self.urls[name]}/_sim/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def cpu_s(self) -> float:
        """CPU seconds the simulator's process has used so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def sim_host(
    script: str | Path, now: datetime, latency_ms: float, warm_from: datetime, warm_until: datetime
) -> Iterator[SimHost]:
    """Start `script --role sim --role-options {json}` (the benchmark's own simulator role, which warms what it
    will measure and ends in serve_deployments()) and yield it once it printed its URLs."""
    options = {
        "now": now.isoformat(),
        "latency_ms": latency_ms,
        "warm_from_ms": to_ms(warm_from),
        "warm_until_ms": to_ms(warm_until),
    }
    process = subprocess.Popen(
        [sys.executable, str(script), "--role", "sim", "--role-options", json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = process.stdout.readline() if process.stdout else ""
        if not ready:
            raise SystemExit("the simulator host exited before it was ready (see its error above)")
        info = json.loads(ready)
        yield SimHost(process, info["urls"], info["warm_s"])
    finally:
        process.terminate()
        process.wait(timeout=10)
