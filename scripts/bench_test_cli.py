"""Wall clock of a command line run by the tests' `run_cli`: forked from the fork server, then as the console script.

    .venv/bin/python scripts/bench_test_cli.py -n 5

tests/helpers.run_cli forks each command line from a server that imported the package and ccxt once
(tests/cli_forkserver.py); DERIBIT_TS_TEST_FORKSERVER=0 starts the console script instead. Both ways run the same
command lines in turn, `-n` times each, in this process (so both see the same load); the date, the machine and
its load average are printed with the medians. The commands that need a server reach a closed loopback port and
fail there, as a command does before its work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchlib import free_port, machine  # noqa: E402
from helpers import run_cli  # noqa: E402  (the tests' own helper, measured as the tests use it)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each command line each way")
    runs = parser.parse_args().n
    port = free_port()  # nothing listens there: the commands fail against it
    nowhere = f"postgresql://nobody@127.0.0.1:{port}/none"
    command_lines = [
        ["--version"],
        ["config"],
        ["backfill", "candles", "--dsn", nowhere, "--api-url", f"http://127.0.0.1:{port}"],
        ["status", "--dsn", nowhere],
    ]
    print(", ".join(machine().values()))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    run_cli("--version")  # the fork server starts on first use: not part of any figure
    print(f"{'command line':24} {'forked':>8} {'console script':>15}")
    for args in command_lines:
        times: dict[str, list[float]] = {"forked": [], "script": []}
        for _ in range(runs):
            for way in ("forked", "script"):
                os.environ["DERIBIT_TS_TEST_FORKSERVER"] = "1" if way == "forked" else "0"
                start = time.perf_counter()
                run_cli(*args)
                times[way].append(time.perf_counter() - start)
        name = " ".join(args[:2]) if args[0] == "backfill" else args[0]
        forked, script = (statistics.median(times[way]) for way in ("forked", "script"))
        print(f"{name:24} {forked:7.3f}s {script:14.3f}s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
