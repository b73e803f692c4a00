"""Soak: two `deribit-ts collect` processes (a leader and a standby) against the simulator at a fast clock for
--days simulated days, through exchange faults (--fault-rate), the simulator's own outages and expiries, and, at
a quarter, half and three quarters of the run: a SIGSTOP of the leader (resumed after the lease), a restart of the
database, and an exchange outage of --outage-s real seconds.

It prints, while it runs: every collector's RSS and every dataset's lag (simulated seconds, against the
simulator's clock) every --sample-s real seconds; at each simulated day: rows and bytes of every deribit_ts table.
At the end it waits until the collector has caught up (no task of its own left), checks every stored candle of the
live BTC futures and the BTC funding rows, from the collector's origin to each watermark, with --options every
stored option candle (and every traded minute inside each option's final coverage) and every stored option snapshot
row (or a random sample: --snapshot-sample) against the simulator, and prints the worst lag per dataset
against its `status` threshold, overall and once each event's catch-up has settled, and what the run cost: CPU
seconds of the collectors and of the database server, requests sent, against the real seconds. Exit 1 when
anything differs or a lag stayed over its threshold after the events settled.

    .venv/bin/python scripts/bench_soak.py [--days 3] [--speed 120] [--options] [--fault-rate 0.02]
"""

from __future__ import annotations

import argparse
import json
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
from deribit_ts.ingest.options import is_filler
from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.sim import snapshots as sim_snapshots
from deribit_ts.sim.config import Pathologies
from deribit_ts.timeutil import MINUTE_MS, from_ms, to_ms

START = datetime(2024, 3, 4, 7, 0, tzinfo=UTC)
LEASE_S = 10


def collector(dsn: str, url: str, kinds: str, log: Path, lease_s: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "deribit_ts", "collect", "--currency", "BTC", "--kinds", kinds]
    argv += ["--dsn", dsn, "--api-url", url]
    env = {**os.environ, "DERIBIT_TS_LEADER_LEASE_S": str(lease_s), "DERIBIT_TS_COLLECT_SUMMARY_S": "60"}
    return subprocess.Popen(argv, env=env, stderr=log.open("a"))


def still_running(processes: list[subprocess.Popen]) -> None:
    """A collector retries every fault it meets; one that exits (a setting it refuses, a crash) ends the run."""
    for n, p in enumerate(processes):
        if p.poll() is not None:
            raise SystemExit(f"bench_soak: collector {n} exited with code {p.returncode} (see its log above)")


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


def backlog(dsn: str) -> str:
    """Pending collector tasks by priority class: what the lags do not show (a catch-up that never gets its turn)."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            rows = conn.execute(
                """SELECT CASE WHEN priority <= -1000 THEN 'fresh' WHEN priority <= -800 THEN 'options'
                               WHEN priority <= -500 THEN 'catch-up' ELSE 'other' END, count(*)
                     FROM deribit_ts.tasks WHERE state IN ('pending', 'running') AND priority < 0
                    GROUP BY 1 ORDER BY 1"""
            ).fetchall()
    except psycopg.Error:
        return "?"
    return " ".join(f"{kind}:{n}" for kind, n in rows) or "none"


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


def records_per_key(dsn: str) -> dict[str, int]:
    """The most coverage records of one key: of all keys, and of the keys without an open task (whose history is
    complete: their records can all merge once settled, while a key with a backlog keeps a record per island)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT coalesce(max(n), 0), coalesce(max(n) FILTER (WHERE NOT open), 0)
                 FROM (SELECT c.dataset, c.key, count(*) AS n,
                              EXISTS (SELECT 1 FROM deribit_ts.tasks t
                                       WHERE t.dataset = c.dataset AND t.key = c.key
                                         AND t.state IN ('pending', 'running')) AS open
                         FROM deribit_ts.coverage c GROUP BY c.dataset, c.key) k"""
        ).fetchone()
    return {"all": row[0], "without a backlog": row[1]}


def caught_up(dsn: str, until: datetime) -> bool:
    """No collector task left before `until` but options' (the backlog line shows those): every gap the events
    left is filled (the collector goes on planning the newest minutes meanwhile, at a fast clock several a second)."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            open_tasks = conn.execute(
                """SELECT count(*) FROM deribit_ts.tasks
                    WHERE state IN ('pending', 'running') AND priority < 0 AND range_start < %s
                      AND key NOT LIKE '%%-C' AND key NOT LIKE '%%-P'""",
                (until,),
            ).fetchone()[0]
            # and the live futures' candles are collected up to the end (no task is left when none is planned: a
            # collector that has not reconnected yet plans nothing)
            behind = conn.execute(
                """SELECT count(*) FROM deribit.instruments i
                     LEFT JOIN deribit_ts.watermarks w ON w.dataset = 'candles' AND w.key = i.instrument_name
                    WHERE i.base_currency = 'BTC' AND i.kind = 'future' AND (i.expiry IS NULL OR i.expiry > %(until)s)
                      AND i.creation_ts <= %(until)s AND coalesce(w.covered_until, '-infinity') < %(until)s""",
                {"until": until},
            ).fetchone()[0]
    except psycopg.Error:
        return False
    return open_tasks == 0 and behind == 0


def collecting(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT 1 FROM deribit_ts.collector_status WHERE holds_lock AND state = 'collecting'"
            ).fetchone()
    except psycopg.Error:
        return False
    return row is not None


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
                missing = sorted({row[0] for row in want} - {row[0] for row in stored})
                shown = ", ".join(f"{ts:%m-%d %H:%M}" for ts in missing[:4]) + (" ..." if len(missing) > 4 else "")
                problems.append(
                    f"{name}: {len(stored)} candles stored, {len(want)} in the market, or values differ"
                    + (f" (missing {shown})" if missing else "")
                )
        funding = conn.execute(
            "SELECT ts, interest_1h FROM deribit.funding_rates WHERE ts < %s ORDER BY ts",
            (marks.get("funding BTC-PERPETUAL", origin),),
        ).fetchall()
    if "funding BTC-PERPETUAL" not in marks:
        return [*problems, "funding: never collected"]
    hour = origin.replace(minute=0)
    truth = sim.market.funding("BTC-PERPETUAL", to_ms(hour) - 1, to_ms(marks["funding BTC-PERPETUAL"]) - 1)
    want_funding = [(from_ms(r["timestamp"]), r["interest_1h"]) for r in truth]
    if funding != want_funding:
        missing = sorted({row[0] for row in want_funding} - {row[0] for row in funding})[:4]
        problems.append(
            f"funding: {len(funding)} rows stored, {len(truth)} in the market, or values differ"
            + (f" (missing {', '.join(f'{ts:%m-%d %H:%M}' for ts in missing)})" if missing else "")
        )
    return problems


def check_options(dsn: str, sim, run_end: datetime) -> tuple[int, int, list[str]]:
    """Every stored candle of every BTC option against the simulator's traded minutes (its answer without the
    zero-volume fillers, which are recorded, not stored), from the collector's origin to the run's end: each stored
    candle equals the market's, and every traded minute inside the option's final coverage is stored (an option's
    history may still be a backlog of tasks at a fast clock: its watermark is not a promise for what is below).
    Returns (options checked, candles checked, differences)."""
    problems, options, candles = [], 0, 0
    columns = ("ticks", "open", "high", "low", "close", "volume", "cost")
    with psycopg.connect(dsn) as conn:
        origin = conn.execute("SELECT origin FROM deribit_ts.collector_origin").fetchone()[0]
        names = [
            n
            for (n,) in conn.execute(
                "SELECT instrument_name FROM deribit.instruments WHERE kind = 'option' AND base_currency = 'BTC' "
                "ORDER BY 1"
            )
        ]
        for name in names:
            final = conn.execute(
                """SELECT coalesce(range_agg(tstzrange(lower(fetched),
                                                       greatest(lower(fetched), least(upper(fetched), final_until)))),
                                 '{}')
                     FROM deribit_ts.coverage WHERE dataset = 'candles' AND key = %s""",
                (name,),
            ).fetchone()[0]
            stored = conn.execute(
                "SELECT ts, open, high, low, close, volume FROM deribit.ohlcv_1m WHERE instrument_name = %s "
                "AND ts >= %s AND ts < %s ORDER BY ts",
                (name, origin, run_end),
            ).fetchall()
            if not stored and not final:
                continue
            truth = sim.market.candles(name, to_ms(origin), to_ms(run_end) - MINUTE_MS, now_ms=to_ms(run_end))
            market = {
                from_ms(t): (from_ms(t), o, h, low, c, v)
                for t, o, h, low, c, v, cost in zip(*(truth[c] for c in columns), strict=True)
                if to_ms(origin) <= t < to_ms(run_end) and not is_filler((t, o, h, low, c, v, cost))
            }
            options += 1
            candles += len(stored)
            differ = [row[0] for row in stored if market.get(row[0]) != row]
            missing = sorted(ts for ts in market.keys() - {row[0] for row in stored} if any(ts in r for r in final))
            if differ or missing:
                shown = ", ".join(f"{ts:%m-%d %H:%M}" for ts in missing[:4]) + (" ..." if len(missing) > 4 else "")
                problems.append(
                    f"{name}: {len(stored)} candles stored, {len(differ)} not the market's"
                    + (f", {len(missing)} traded minutes of its final coverage missing ({shown})" if missing else "")
                )
    return options, candles, problems


def check_snapshots(dsn: str, sim, sample: int) -> tuple[int, list[str]]:
    """A random sample of the stored option snapshot rows (every row with `sample` 0) against what the simulator
    quoted at each row's own quote time: the ticker's for rounds with the exchange's greeks, the book summary's for
    bulk rounds. Returns (rounds stored, differences)."""
    with psycopg.connect(dsn) as conn:
        rounds = conn.execute("SELECT count(DISTINCT ts) FROM deribit.option_snapshots").fetchone()[0]
        rows = conn.execute(
            """SELECT instrument_name, quote_ts, mark_price, mark_iv, underlying_price, greeks_source
                 FROM deribit.option_snapshots ORDER BY random() LIMIT %s""",
            (sample or None,),
        ).fetchall()
    problems = []
    for name, quote_ts, mark, mark_iv, underlying, source in rows:
        inst = sim.market.instrument(name, now_ms=to_ms(quote_ts))
        quote = (sim_snapshots.ticker if source == "ticker" else sim_snapshots.book_summary)(
            sim.market, inst, to_ms(quote_ts)
        )
        want = (quote["mark_price"], quote["mark_iv"], quote["underlying_price"])
        if (mark, mark_iv, underlying) != want:
            problems.append(
                f"snapshot {name} at {quote_ts:%Y-%m-%d %H:%M:%S} ({source}): {(mark, mark_iv, underlying)}"
                f" stored, {want} quoted"
            )
    return rounds, problems


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and of its children that ended (utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(cluster: Cluster) -> float:
    """CPU seconds of the database server so far: the postmaster, its ended children and its live ones."""
    postmaster = cluster._postmaster_pid()
    if postmaster is None:
        return 0.0
    total = cpu_s(postmaster)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> int:  # noqa: PLR0915 (one scenario, read top to bottom)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--speed", type=float, default=120.0, help="simulated seconds per real second")
    parser.add_argument("--options", action="store_true", help="collect options too (candles and snapshots)")
    parser.add_argument("--fault-rate", type=float, default=0.02)
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument(
        "--report-h", type=float, default=24.0, help="simulated hours between reports of the tables' rows and bytes"
    )
    parser.add_argument("--lease-s", type=int, default=LEASE_S, help="the leader's lease (at least 10 s)")
    parser.add_argument(
        "--stop-s", type=float, default=None, help="real seconds the leader stays stopped (default: lease + 20 s)"
    )
    parser.add_argument(
        "--no-events", action="store_true", help="no SIGSTOP, restart or outage: the steady state (to find a clock)"
    )
    parser.add_argument("--summary", action="store_true", help="end with one line: summary {json} (for tests)")
    parser.add_argument(
        "--snapshot-sample", type=int, default=0, help="option snapshot rows checked at the end (0: every row)"
    )
    parser.add_argument(
        "--settle-s", type=float, default=600.0, help="real seconds to wait for the catch-up at the end"
    )
    args = parser.parse_args()
    kinds = "perpetual,future,option" if args.options else "perpetual,future"
    kind_list = kinds.split(",")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M}Z on {platform.node()} ({os.cpu_count()} cpus): {args.days} simulated "
        f"days at {args.speed:g}x, kinds {kinds}, fault rate {args.fault_rate}; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
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
    events = {} if args.no_events else {0.25: "sigstop", 0.5: "database restart", 0.75: "exchange outage"}
    worst: dict[str, float] = {}
    settled_worst: dict[str, float] = {}
    last_event_real = 0.0
    processes: list[subprocess.Popen] = []
    logs: list[Path] = []
    server_cpu, requests = 0.0, 0  # of the database servers and simulators that ran before the current ones
    rounds, snapshot_problems = 0, []
    option_count, option_candles = 0, 0
    sim_cm = run_in_thread(config)
    sim = sim_cm.__enter__()
    try:
        port = int(sim.url.rsplit(":", 1)[1])
        logs = [parent / f"collector-{n}.log" for n in range(2)]
        processes = [collector(dsn, sim.url, kinds, log, args.lease_s) for log in logs]
        last_event_real = time.monotonic()  # (starting is an event too: the first catch-up)
        # The run's days start once a leader collects (starting takes real seconds: simulated hours at a fast clock).
        ready_by = time.monotonic() + 180
        while not collecting(dsn):
            still_running(processes)
            if time.monotonic() > ready_by:
                raise SystemExit("bench_soak: no collector leads after 180 s (their logs' last lines are above)")
            time.sleep(0.5)
        begin_ms = sim.market.now_ms()
        print(f"{from_ms(begin_ms):%Y-%m-%d %H:%M}Z a leader collects", flush=True)
        end_ms = begin_ms + args.days * 86_400_000
        report_ms = int(args.report_h * 3_600_000)
        next_day = begin_ms + report_ms
        reports: list[dict[str, int]] = []  # rows per deribit_ts table at each report
        rss_series: list[float] = []  # the largest collector's RSS at each sample (MB)
        next_sample = 0.0
        started = time.monotonic()
        while sim.market.now_ms() < end_ms:
            still_running(processes)
            done = (sim.market.now_ms() - begin_ms) / (end_ms - begin_ms)
            for at in sorted(events):
                if done >= at:
                    event = events.pop(at)
                    print(f"{from_ms(sim.market.now_ms()):%Y-%m-%d %H:%M}Z event: {event}", flush=True)
                    if event == "sigstop" and (pid := leader_pid(dsn)):
                        os.kill(pid, signal.SIGSTOP)
                        time.sleep(args.stop_s if args.stop_s is not None else args.lease_s + 20)
                        os.kill(pid, signal.SIGCONT)
                    elif event == "database restart":
                        server_cpu += server_cpu_s(cluster)
                        cluster.down()
                        time.sleep(2)
                        cluster.up(quiet=True)
                    elif event == "exchange outage":
                        now_ms = sim.market.now_ms()
                        requests += sim.stats()["requests"]
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
                rss_now = [rss_mb(p.pid) or 0.0 for p in processes]
                rss_series.append(max(rss_now))
                rss = " ".join(f"{p.pid}:{mb:.0f}MB" for p, mb in zip(processes, rss_now, strict=True))
                shown = ", ".join(f"{d} {age(v)}" for d, v in sorted(current.items()) if v is not None)
                load = os.getloadavg()[0]
                pending = backlog(dsn)
                print(f"{now:%Y-%m-%d %H:%M}Z rss {rss} load {load:.1f} tasks {pending}  lag {shown}", flush=True)
            if sim.market.now_ms() >= next_day:
                print(f"-- {from_ms(next_day):%Y-%m-%d %H:%M}Z (simulated): table rows bytes")
                next_day += report_ms
                sizes = table_sizes(dsn)
                reports.append({table: rows for table, rows, _ in sizes})
                for table, rows, size in sizes:
                    print(f"   {table:28} {rows:>12,} {size:>14,}")
                per_key = records_per_key(dsn)
                reports[-1]["coverage_per_key"] = per_key["all"]
                print("   coverage records per key, most: " + ", ".join(f"{k} {n}" for k, n in per_key.items()))
            time.sleep(0.5)
        # (the run ends on a whole minute: the minute forming at its end is not in the market yet)
        settle_started, run_end = time.monotonic(), from_ms(sim.market.now_ms() // MINUTE_MS * MINUTE_MS)
        while time.monotonic() - settle_started < args.settle_s and not caught_up(dsn, run_end):
            time.sleep(1)
        print(f"caught up {time.monotonic() - settle_started:.0f} s (real) after the run's end", flush=True)
        real_s = time.monotonic() - started
        collector_cpu = sum(cpu_s(p.pid) for p in processes)
        sim_cpu = time.process_time()  # this process: the simulator's threads (and the sampling, a sliver)
        server_cpu += server_cpu_s(cluster)
        requests += sim.stats()["requests"]
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait(timeout=60)
        problems = check(dsn, sim, run_end)
        with psycopg.connect(dsn) as conn:  # merged as the collector goes: a handful per key, not one per window
            coverage_per_key = conn.execute(
                """SELECT coalesce(max(n), 0)
                     FROM (SELECT count(*) AS n FROM deribit_ts.coverage GROUP BY dataset, key) c"""
            ).fetchone()[0]
        print(f"coverage records per key at the end: at most {coverage_per_key}")
        if args.options:
            option_count, option_candles, option_problems = check_options(dsn, sim, run_end)
            rounds, snapshot_problems = check_snapshots(dsn, sim, args.snapshot_sample)
            problems += option_problems + snapshot_problems
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
    print(
        f"cost over {real_s:.0f} real s (to the catch-up): collectors {collector_cpu:.0f} CPU s "
        f"({collector_cpu / real_s:.0%} of a core), database server {server_cpu:.0f} CPU s "
        f"({server_cpu / real_s:.0%} of a core), simulator {sim_cpu:.0f} CPU s ({sim_cpu / real_s:.0%} of a core), "
        f"{requests:,} requests ({requests / real_s:.1f}/s real, "
        f"{requests / (args.days * 86400):.2f}/simulated s); load average now "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    if args.options:
        print(f"option candles checked: {option_candles:,} of {option_count} options")
        checked = f"{args.snapshot_sample} random rows" if args.snapshot_sample else "every row"
        print(f"option snapshot rounds stored: {rounds:,}; {checked} checked")
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
    if args.summary:
        summary = {
            "problems": problems,
            "over": over,
            "reports": reports,
            "worst": worst,
            "rss_mb": rss_series,
            "settled": settled_worst,
            "coverage_per_key": coverage_per_key,
        }
        print("summary " + json.dumps(summary, default=str))
    return 1 if problems or over else 0


if __name__ == "__main__":
    sys.exit(main())
