"""Benchmark of `deribit-ts collect` over a simulated day: lag per dataset and requests per second used.

    .venv/bin/python scripts/bench_collect.py                 # a simulated day at 180x: about 8 minutes
    .venv/bin/python scripts/bench_collect.py --hours 1       # smoke run, under a minute
    .venv/bin/python scripts/bench_collect.py --dsn DSN --speed 120 --currency BTC --json

The simulator runs in its own process with its clock `--speed` times faster than real time (no rate limit: at that
speed a day's traffic arrives in minutes), one collector runs against a fresh database (a private embedded cluster
unless --dsn), and every half second of real time the benchmark reads deribit_ts.collector_freshness at the
simulator's clock: the lag of each dataset as `deribit-ts status` reports it (time since the end of the newest
stored minute of the stalest key, so 0-60 s while a minute forms). Reported per dataset: median, p99 and max.

Comparisons printed in the same run: the candles' p99 lag against the 150 s bound (stored within 90 s of the
minute's close), and requests per simulated second against Deribit's allowance (20 a second). Both are measured on
the simulator's clock, where every real second the collector spends (requests, commits, a loaded machine) counts
`--speed` simulated seconds: the lags are upper bounds of what the same collector shows at real speed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from benchlib import database_server, fresh_database

REPO = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "deribit-ts"
START = datetime(2024, 3, 7, 0, 0, tzinfo=UTC)  # a Thursday: the day includes Friday 08:00's expiry and listings
ALLOWANCE_PER_S = 20.0  # Deribit's default public bucket: 10,000 credits/s at 500 a request
CANDLE_BOUND_S = 150.0  # 60 s of the forming minute + 90 s after it closes


def start_sim(speed: float) -> tuple[subprocess.Popen, str]:
    sim = subprocess.Popen(
        [
            str(EXE),
            "sim",
            "serve",
            "--port",
            "0",
            "--now",
            START.isoformat(),
            "--clock-speed",
            str(speed),
            "--rate-limit",
            "off",
            "--pathologies",
            "filler-candles,bad-ticks",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = sim.stdout.readline().strip()
    if not url.startswith("http"):
        sim.kill()
        raise SystemExit("the simulator did not start")
    return sim, url


def sim_now(url: str) -> datetime:
    with urllib.request.urlopen(f"{url}/api/v2/public/get_time", timeout=10) as reply:
        return datetime.fromtimestamp(json.loads(reply.read())["result"] / 1000, UTC)


def sim_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=10) as reply:
        return json.loads(reply.read())


class Sampler(threading.Thread):
    def __init__(self, dsn: str, url: str, currencies: list[str]):
        super().__init__(daemon=True)
        self.dsn, self.url, self.currencies = dsn, url, currencies
        self.lags: dict[str, list[float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(0.5):
                now = sim_now(self.url)
                rows = conn.execute(
                    "SELECT dataset, lag FROM deribit_ts.collector_freshness(%s, %s, %s)",
                    (now, self.currencies, ["perpetual", "future"]),
                ).fetchall()
                for dataset, lag in rows:
                    if lag is not None:
                        self.lags.setdefault(dataset, []).append(lag.total_seconds())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(dsn: str, hours: float, speed: float, currencies: list[str]) -> dict:
    sim, url = start_sim(speed)
    env = {**os.environ, "DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
    collector = subprocess.Popen(
        [str(EXE), "collect", "--currency", ",".join(currencies), "--dsn", dsn, "--api-url", url],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the first candles are in
            with psycopg.connect(dsn) as conn:
                if conn.execute("SELECT count(*) FROM deribit_ts.watermarks WHERE dataset = 'candles'").fetchone()[0]:
                    break
            time.sleep(0.2)
        began = sim_now(url)
        before = sim_stats(url)["requests"]
        sampler = Sampler(dsn, url, currencies)
        sampler.start()
        while sim_now(url) < began + timedelta(hours=hours):
            time.sleep(1)
            if collector.poll() is not None:
                raise SystemExit(f"the collector stopped: {collector.stderr.read()[-2000:]}")
        sampler.stop.set()
        sampler.join()
        ended = sim_now(url)
        stats = sim_stats(url)
    finally:
        collector.send_signal(signal.SIGTERM)
        try:
            collector.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            collector.kill()
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    simulated_s = (ended - began).total_seconds()
    requests = stats["requests"] - before
    with psycopg.connect(dsn) as conn:
        candles = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()[0]
        errors = conn.execute("SELECT coalesce(sum(errors), 0) FROM deribit_ts.collector_jobs").fetchone()[0]
    lags = {
        d: {"samples": len(v), "median_s": statistics.median(v), "p99_s": percentile(v, 0.99), "max_s": max(v)}
        for d, v in sorted(sampler.lags.items())
        if v
    }
    return {
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "simulated_hours": round(simulated_s / 3600, 2),
        "speed": speed,
        "currencies": currencies,
        "lag": lags,
        "requests": requests,
        "requests_by_method": stats["requests_by_method"],
        "candles_stored": candles,
        "job_errors": int(errors),
        "requests_per_simulated_s": requests / simulated_s,
        "throttled": stats["errors_by_code"].get("10028", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours to collect (default 24)")
    parser.add_argument("--speed", type=float, default=180.0, help="simulated seconds per real second")
    parser.add_argument("--currency", default="BTC,ETH")
    parser.add_argument("--dsn", default=os.environ.get("DERIBIT_TS_DSN"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    currencies = [c.strip().upper() for c in args.currency.split(",") if c.strip()]
    with database_server(args.dsn) as (server, _), fresh_database(server, "collect") as dsn:
        result = run(dsn, args.hours, args.speed, currencies)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['simulated_hours']} simulated hours at {args.speed:g}x, {', '.join(currencies)}, "
        f"taken {result['taken_at']}"
    )
    print(
        f"{'dataset':18} {'samples':>7} {'median':>8} {'p99':>8} {'max':>8}   lag in simulated seconds "
        f"(and in real seconds: / {args.speed:g})"
    )
    for dataset, d in result["lag"].items():
        real = "  ".join(f"{d[k] / args.speed:.2f}" for k in ("median_s", "p99_s", "max_s"))
        print(f"{dataset:18} {d['samples']:>7} {d['median_s']:>8.1f} {d['p99_s']:>8.1f} {d['max_s']:>8.1f}   ({real})")
    used = result["requests_per_simulated_s"]
    print(
        f"requests: {result['requests']} ({used:.3f} per simulated second = {used / ALLOWANCE_PER_S:.1%} of "
        f"Deribit's {ALLOWANCE_PER_S:g}/s allowance); 10028 answers: {result['throttled']}; "
        f"job errors: {result['job_errors']}; candles stored: {result['candles_stored']}"
    )
    for dataset in ("candles.perpetual", "candles.future"):
        if dataset in result["lag"]:
            p99 = result["lag"][dataset]["p99_s"]
            print(f"{dataset}: p99 lag {p99:.1f} s = {p99 / CANDLE_BOUND_S:.2f} of the {CANDLE_BOUND_S:g} s bound")


if __name__ == "__main__":
    main()
