"""CPU of starting `deribit-ts` commands: this checkout against another one (e.g. the previous commit) in turn.

    git worktree add --detach /tmp/before HEAD~1
    .venv/bin/python scripts/bench_startup.py --vs /tmp/before --dsn "$(deribit-ts db url)" -n 5

Each command runs as `python -m deribit_ts ...` with PYTHONPATH set to the tree under test (the same
interpreter and packages for both), the two trees alternating so that both see the same machine load. CPU is
user + system of the child (resource.getrusage); the load average is printed with the figures. `backfill
instruments` runs against a `deribit-ts sim serve` this script starts (into the given, migrated database).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import free_port

HERE = Path(__file__).resolve().parent.parent


def _run(tree: Path, args: list[str], home: str) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": str(tree), "DERIBIT_TS_HOME": home, "DERIBIT_TS_RATE_LIMIT_SCALE": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "deribit_ts", *args], env=env, capture_output=True, cwd=tree)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vs", type=Path, required=True, help="the other checkout (its repository root)")
    parser.add_argument("--dsn", required=True, help="a migrated database (coverage, backfill instruments)")
    parser.add_argument("-n", type=int, default=5, help="repetitions of each command per tree")
    opts = parser.parse_args()
    port = free_port()
    home = f"/tmp/bench-startup-{os.getpid()}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "deribit_ts", "sim", "serve", "--port", str(port), "--now", "2024-03-01"],
        env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # the simulator's own start (it is not what is measured)
        commands = {
            "--help": ["--help"],
            "config": ["config"],
            "status --help": ["status", "--help"],
            "coverage": ["coverage", "--dsn", opts.dsn],
            "sim --help": ["sim", "--help"],
            "backfill instruments": [
                *("backfill", "instruments", "--currency", "BTC", "--dsn", opts.dsn),
                *("--api-url", f"http://127.0.0.1:{port}"),
            ],
        }
        print(f"load average at start: {os.getloadavg()}")
        for label, args in commands.items():
            cpu: dict[str, list[float]] = {"after": [], "before": []}
            wall: dict[str, list[float]] = {"after": [], "before": []}
            for _ in range(opts.n):
                for name, tree in (("before", opts.vs.resolve()), ("after", HERE)):
                    c, w, rc = _run(tree, args, home)
                    if rc != 0:
                        sys.exit(f"{label} exited {rc} in {tree}")
                    cpu[name].append(c)
                    wall[name].append(w)
            b, a = statistics.median(cpu["before"]), statistics.median(cpu["after"])
            print(
                f"{label:22} CPU median before {b:.3f} s, after {a:.3f} s ({a / b:.2f}x); "
                f"wall median before {statistics.median(wall['before']):.2f} s, "
                f"after {statistics.median(wall['after']):.2f} s; load {os.getloadavg()[0]:.1f}"
            )
    finally:
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
