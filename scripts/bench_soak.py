"""Soak: two `deribit-ts collect` processes (a leader and a standby) against the simulator at a fast clock for
--days simulated days, through exchange faults (--fault-rate), the simulator's own outages and expiries, and, at
a quarter, half and three quarters of the run: a SIGSTOP of the leader (resumed after the lease), a restart of the
database, and an exchange outage of --outage-s real seconds.

It prints, while it runs: every collector's RSS and every dataset's lag (simulated seconds, against the
simulator's clock) every --sample-s real seconds; at each simulated day: rows and bytes of every deribit_ts table.
At the end it waits until the collector has caught up (no task of its own left), checks every stored candle of the
live BTC futures and the BTC funding rows, from the collector's origin to each watermark, against the simulator,
and prints the worst lag per dataset against its `status` threshold, overall and once each event's catch-up has
settled. Exit 1 when anything differs or a lag stayed over its threshold after the events settled.

    .venv/bin/python scripts/bench_soak.py [--days 3] [--speed 120] [--options] [--fault-rate 0.02]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from deribit_ts.collect.status import DEFAULT_MAX_LAG, age
from deribit_ts.config import default_home
from deribit_ts.db.embedded import Cluster
from deribit_ts.db.migrate import apply_all
from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.sim.config import Pathologies
from deribit_ts.timeutil import MINUTE_MS, from_ms, to_ms

START = datetime(2024, 3, 4, 7, 0, tzinfo=UTC)
LEASE_S = 10


def collector(dsn: str, url: str, kinds: str, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "deribit_ts", "collect", "--currency", "BTC", "--kinds", kinds]
    argv += ["--dsn", dsn, "--api-url", url]
    env = {**os.environ, "DERIBIT_TS_LEADER_LEASE_S": str(LEASE_S), "DERIBIT_TS_COLLECT_SUMMARY_S": "60"}
    return subprocess.Popen(argv, env=env, stderr=log.open("a"))


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def lags(dsn: str, now: datetime, kinds: list[str]) -> dict[str, float | None]:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT dataset, lag FROM deribit_ts.collector_freshness(%s, %s, %s)", (now, ["BTC"], kinds)
            ).fetchall()
    except psycopg.Error:
        return {}
    return {d: (lag.total_seconds() if lag is not None else None) for d, lag in rows}


def table_sizes(dsn: str) -> list[tuple[str, int, int]]:
    with psycopg.connect(dsn) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'deribit_ts' ORDER BY tablename"
            )
        ]
        return [
            (
                t,
                conn.execute(f"SELECT count(*) FROM deribit_ts.{t}").fetchone()[0],  # noqa: S608 (catalog names)
                conn.execute("SELECT pg_total_relation_size(%s)", (f"deribit_ts.{t}",)).fetchone()[0],
            )
            for t in tables
        ]


def caught_up(dsn: str, until: datetime) -> bool:
    """No collector task left before `until`: every gap the events left is filled (the collector goes on planning
    the newest minutes meanwhile, at a fast clock several a second)."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            open_tasks = conn.execute(
                """SELECT count(*) FROM deribit_ts.tasks
                    WHERE state IN ('pending', 'running') AND priority < 0 AND range_start < %s""",
                (until,),
            ).fetchone()[0]
    except psycopg.Error:
        return False
    return open_tasks == 0


def leader_pid(dsn: str) -> int | None:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SELECT pid FROM deribit_ts.collector_status WHERE holds_lock").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def check(dsn: str, sim, run_end: datetime) -> list[str]:
    """Differences between the stored candles (live BTC futures) and funding rows and the simulator's, from the
    collector's origin to each watermark or the run's end, whichever is earlier."""
    problems = []
    with psycopg.connect(dsn) as conn:
        origin = conn.execute("SELECT origin FROM deribit_ts.collector_origin").fetchone()[0]
        marks = {
            k: min(v, run_end)
            for k, v in conn.execute("SELECT dataset || ' ' || key, covered_until FROM deribit_ts.watermarks")
        }
        names = [
            n
            for (n,) in conn.execute(
                """SELECT instrument_name FROM deribit.instruments WHERE base_currency = 'BTC' AND kind = 'future'
                      AND (expiry IS NULL OR expiry > %s) AND creation_ts <= %s""",
                (origin, from_ms(sim.market.now_ms())),
            )
        ]
        for name in names:
            until = marks.get(f"candles {name}")
            if until is None:
                problems.append(f"{name}: never collected")
                continue
            stored = conn.execute(
                "SELECT ts, open, high, low, close, volume FROM deribit.ohlcv_1m WHERE instrument_name = %s "
                "AND ts >= %s AND ts < %s ORDER BY ts",
                (name, origin, until),
            ).fetchall()
            truth = sim.market.candles(name, to_ms(origin), to_ms(until) - MINUTE_MS)
            want = [
                (from_ms(t), *v)
                for t, *v in zip(*(truth[c] for c in ("ticks", "open", "high", "low", "close", "volume")), strict=True)
                if to_ms(origin) <= t < to_ms(until)
            ]
            if stored != want:
                problems.append(f"{name}: {len(stored)} candles stored, {len(want)} in the market, or values differ")
        funding = conn.execute(
            "SELECT ts, interest_1h FROM deribit.funding_rates WHERE ts < %s ORDER BY ts",
            (marks["funding BTC-PERPETUAL"],),
        ).fetchall()
    hour = origin.replace(minute=0)
    truth = sim.market.funding("BTC-PERPETUAL", to_ms(hour) - 1, to_ms(marks["funding BTC-PERPETUAL"]) - 1)
    if funding != [(from_ms(r["timestamp"]), r["interest_1h"]) for r in truth]:
        problems.append(f"funding: {len(funding)} rows stored, {len(truth)} in the market, or values differ")
    return problems


def main() -> int:  # noqa: PLR0915 (one scenario, read top to bottom)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--speed", type=float, default=120.0, help="simulated seconds per real second")
    parser.add_argument("--options", action="store_true", help="collect options too (candles and snapshots)")
    parser.add_argument("--fault-rate", type=float, default=0.02)
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument(
        "--settle-s", type=float, default=600.0, help="real seconds to wait for the catch-up at the end"
    )
    args = parser.parse_args()
    kinds = "perpetual,future,option" if args.options else "perpetual,future"
    kind_list = kinds.split(",")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M}Z on {platform.node()} ({os.cpu_count()} cpus): {args.days} simulated "
        f"days at {args.speed:g}x, kinds {kinds}, fault rate {args.fault_rate}"
    )
    prefix = Path(os.environ.get("DERIBIT_TS_PG_PREFIX") or default_home() / "postgres")
    parent = Path(tempfile.mkdtemp(prefix="deribit-ts-soak-"))
    cluster = Cluster(parent / "home", prefix=prefix)
    cluster.up(quiet=True)
    dsn = cluster.url()
    apply_all(dsn)
    config = SimConfig(
        now=START,
        clock_speed=args.speed,
        fault_rate=args.fault_rate,
        strikes_per_expiry=6,
        option_expiries=("day", "week"),
        pathologies=Pathologies(late_corrections=False),
    )
    events = {0.25: "sigstop", 0.5: "database restart", 0.75: "exchange outage"}
    worst: dict[str, float] = {}
    settled_worst: dict[str, float] = {}
    last_event_real = 0.0
    processes: list[subprocess.Popen] = []
    logs: list[Path] = []
    sim_cm = run_in_thread(config)
    sim = sim_cm.__enter__()
    try:
        port = int(sim.url.rsplit(":", 1)[1])
        logs = [parent / f"collector-{n}.log" for n in range(2)]
        processes = [collector(dsn, sim.url, kinds, log) for log in logs]
        end_ms = to_ms(START) + args.days * 86_400_000
        next_day = to_ms(START) + 86_400_000
        next_sample = 0.0
        started = time.monotonic()
        while sim.market.now_ms() < end_ms:
            done = (sim.market.now_ms() - to_ms(START)) / (end_ms - to_ms(START))
            for at in sorted(events):
                if done >= at:
                    event = events.pop(at)
                    print(f"{from_ms(sim.market.now_ms()):%Y-%m-%d %H:%M}Z event: {event}", flush=True)
                    if event == "sigstop" and (pid := leader_pid(dsn)):
                        os.kill(pid, signal.SIGSTOP)
                        time.sleep(LEASE_S + 20)
                        os.kill(pid, signal.SIGCONT)
                    elif event == "database restart":
                        cluster.down()
                        time.sleep(2)
                        cluster.up(quiet=True)
                    elif event == "exchange outage":
                        now_ms = sim.market.now_ms()
                        sim_cm.__exit__(None, None, None)
                        time.sleep(args.outage_s)
                        resumed = now_ms + args.outage_s * args.speed * 1000
                        config = SimConfig(**{**config.__dict__, "now": from_ms(resumed), "port": port})
                        sim_cm = run_in_thread(config)
                        sim = sim_cm.__enter__()
                    last_event_real = time.monotonic()
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + args.sample_s
                now = from_ms(sim.market.now_ms())
                current = lags(dsn, now, kind_list)
                for dataset, lag in current.items():
                    if lag is not None:
                        worst[dataset] = max(worst.get(dataset, 0.0), lag)
                        if time.monotonic() - last_event_real > 120:  # an event's catch-up has settled
                            settled_worst[dataset] = max(settled_worst.get(dataset, 0.0), lag)
                rss = " ".join(f"{p.pid}:{rss_mb(p.pid) or 0:.0f}MB" for p in processes)
                shown = ", ".join(f"{d} {age(v)}" for d, v in sorted(current.items()) if v is not None)
                print(f"{now:%Y-%m-%d %H:%M}Z rss {rss}  lag {shown}", flush=True)
            if sim.market.now_ms() >= next_day:
                next_day += 86_400_000
                print(f"-- simulated day {from_ms(next_day - 86_400_000):%Y-%m-%d}: table rows bytes")
                for table, rows, size in table_sizes(dsn):
                    print(f"   {table:28} {rows:>12,} {size:>14,}")
            time.sleep(0.5)
        # (the run ends on a whole minute: the minute forming at its end is not in the market yet)
        settle_started, run_end = time.monotonic(), from_ms(sim.market.now_ms() // MINUTE_MS * MINUTE_MS)
        while time.monotonic() - settle_started < args.settle_s and not caught_up(dsn, run_end):
            time.sleep(1)
        print(f"caught up {time.monotonic() - settle_started:.0f} s (real) after the run's end", flush=True)
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait(timeout=60)
        problems = check(dsn, sim, run_end)
    except BaseException:
        for log in logs:
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]))
        raise
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        sim_cm.__exit__(None, None, None)
        cluster.down()
        shutil.rmtree(parent, ignore_errors=True)
    print(f"real time {time.monotonic() - started:.0f} s")
    print(f"{'dataset':20} {'worst lag':>10} {'after events':>13} {'threshold':>10}")
    over = []
    for dataset in sorted(worst):
        limit = DEFAULT_MAX_LAG.get(dataset)
        settled = settled_worst.get(dataset)
        print(f"{dataset:20} {age(worst[dataset]):>10} {age(settled):>13} {age(limit):>10}")
        if limit is not None and settled is not None and settled > limit:
            over.append(dataset)
    for problem in problems:
        print(f"DIFFERS: {problem}")
    print("data equal to the simulator" if not problems else f"{len(problems)} difference(s)")
    print("every dataset within its threshold" if not over else f"over threshold: {', '.join(over)}")
    return 1 if problems or over else 0


if __name__ == "__main__":
    sys.exit(main())
