"""Benchmark: BTC-PERPETUAL's one-minute candles from the simulator into TimescaleDB, three ways, one run.

    (a) the pipeline's ceiling: `deribit-ts backfill candles` against the simulator with no latency and no
        rate limit (the client's limiter off too);
    (b) realistic: the same command against Deribit's default credit limits and 100 ms latency, with the
        client's default limiter;
    (c) the straightforward way under (b)'s conditions: ccxt's fetch_ohlcv one 5,000-candle window at a
        time, each window written with psycopg's executemany.

Every line runs in its own process (its peak RSS is that process's) against a fresh, migrated database. The
simulator runs in another process, so it neither shares the pipeline's GIL nor, once warmed, its CPU: its
candle cache is filled for the whole benchmarked range before any line starts, because the real exchange
does not generate candles on our cores. (a) and (b) are timed as wall clock of the whole CLI process
(start-up, catalogue refresh, planning, fetching, loading, and the rollups' refresh: overlapped with the
fetching, and the last one after it). (c) is timed from its first chart request to its last commit, which
leaves out its start-up and so flatters the baseline, never the pipeline; it refreshes no rollups.
For (b) the run's fetch time (its start to its last window's commit) is set against the whole run, refresh
included: a backfill at the allowance must not be held up by its rollups (the run within 25% of its fetch).

By default (a) and (b) backfill BTC-PERPETUAL's whole simulated history, 2018-08-14 up to --now 2025-11-01
(3.8 million candles, the size of the real one), so the claim "a full history in under a minute" is measured,
not extrapolated; (c) does 60 days. About 1.5 minutes on 2 cores; --quick takes under 30 s. The exit status
is 0 when every target is met, 1 otherwise; --quick is a smoke run that judges only what a few days can
show (no 10028, every line stored what it reported), its rates are printed but marked "n/a". Figures depend
on what else the machine runs: each line prints how busy all CPUs were meanwhile.

    .venv/bin/python scripts/bench_backfill.py [--quick] [--json] [--dsn DSN] [--days-a N] [--days-b N] ...

Without --dsn (or DERIBIT_TS_DSN) a private embedded cluster is started in a temporary home and stopped at
the end. With one, the role needs CREATEDB; the benchmark's databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from benchlib import (
    Finished,
    SimHost,
    cli_path,
    database_server,
    fresh_database,
    run_measured,
    serve_deployments,
    server_version,
    sim_host,
    to_ms,
)

INSTRUMENT = "BTC-PERPETUAL"
LISTED = "2018-08-14"  # BTC-PERPETUAL's first day, on the exchange and in the simulator
CCXT_SYMBOL = "BTC/USD:BTC"
MINUTE_MS = 60_000
WINDOW_CANDLES = 5000
TARGET_A = 150_000  # candles/s, end to end, no latency, no limit
CEILING_B = 20 * WINDOW_CANDLES  # Deribit's default allowance: 20 requests/s of 5,000 candles
TARGET_B_SHARE = 0.85
TARGET_B_OVER_C = 3.0
REPLACED_SYSTEM = 3_115  # candles/s of the system deribit-ts replaces
FULL_HISTORY = 3_779_642  # BTC-PERPETUAL's one-minute candles on the real exchange
TOO_MANY_REQUESTS = "10028"
REFRESH_SLACK = 1.25  # the run, its refresh at the end included, within 25% of its fetch time
DEPLOYMENTS = {"a": "off", "b": "deribit", "c": "deribit"}  # which simulator each line talks to


@dataclass
class Line:
    label: str
    title: str
    candles: int = 0  # rows in deribit.candles_1m afterwards
    seconds: float = 0.0
    requests: int = 0  # chart requests
    peak_rss_mb: float = 0.0
    reported: int = 0  # what the tool itself says it wrote
    throttled: int = 0  # 10028 answers the simulator sent
    details: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.candles / self.seconds if self.seconds else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Child role: the simulator host


def serve_sim(options: dict) -> None:
    """Serve one simulated market on two ports: unlimited (a), and Deribit's limits plus latency (b, c).

    One market behind both means one cache to warm; the warm-up happens here, in-process, before the URLs
    are printed, so it costs no HTTP and no credits.
    """
    from deribit_ts.sim import SimConfig, SimMarket

    warm_from, warm_until = options["warm_from_ms"], options["warm_until_ms"]
    days = (warm_until - warm_from) // (1440 * MINUTE_MS) + 2
    unlimited = SimConfig(
        now=datetime.fromisoformat(options["now"]), rate_limit="off", latency_ms=0, cache_blocks=max(2048, days + 64)
    )
    limited = unlimited.with_(rate_limit="deribit", latency_ms=options["latency_ms"])
    market = SimMarket(unlimited)
    began = time.perf_counter()
    for start in range(warm_from, warm_until, 30 * 1440 * MINUTE_MS):
        market.candles(INSTRUMENT, start, min(start + 30 * 1440 * MINUTE_MS, warm_until) - 1)
    warm_s = time.perf_counter() - began

    serve_deployments(market, {"off": unlimited, "deribit": limited}, warm_s)


# ---------------------------------------------------------------------------------------------------------------------
# Child role: the baseline (c)


def run_baseline(options: dict) -> None:
    """ccxt's fetch_ohlcv one 5,000-candle window at a time, each window written with executemany."""
    import ccxt

    exchange = ccxt.deribit({"urls": {"api": {"rest": options["url"]}}, "enableRateLimit": True})
    exchange.load_markets()
    since, until = options["since_ms"], options["until_ms"]
    # ccxt's OHLCV has no `cost` column, which deribit.candles_1m requires; the straightforward way fills it
    # with volume x close. The values are thrown away with the database, only the work counts.
    insert = """INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"""
    with psycopg.connect(options["dsn"]) as conn:
        row = conn.execute("SELECT id FROM deribit.instruments WHERE instrument_name = %s", (INSTRUMENT,)).fetchone()
        instrument_id = row[0]
        requests = written = 0
        began = time.perf_counter()
        while since < until:
            limit = min(WINDOW_CANDLES, -(-(until - since) // MINUTE_MS))
            candles = exchange.fetch_ohlcv(CCXT_SYMBOL, "1m", since=since, limit=limit)
            requests += 1
            rows = [
                (instrument_id, datetime.fromtimestamp(ts / 1000, UTC), o, h, low, c, v, v * c)
                for ts, o, h, low, c, v in candles
                if since <= ts < until
            ]
            with conn.cursor() as cur:
                cur.executemany(insert, rows)
            conn.commit()
            written += len(rows)
            # Walk on from the last candle; an empty window (an exchange outage) is skipped whole.
            since = rows[-1][1].timestamp() * 1000 + MINUTE_MS if rows else since + limit * MINUTE_MS
            since = int(since)
        seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "requests": requests, "written": written}), flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# The per-line databases (on benchlib's database_server) and child processes


def stored_candles(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT count(*) FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
                WHERE i.instrument_name = %s""",
            (INSTRUMENT,),
        ).fetchone()[0]


def _env(rate_limit: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DERIBIT_TS_RATE_LIMIT_SCALE", "DERIBIT_TS_DSN")}
    if rate_limit is not None:
        env["DERIBIT_TS_RATE_LIMIT_SCALE"] = rate_limit
    return env


def _check(finished: Finished, what: str) -> None:
    if finished.returncode != 0:
        tail = finished.stderr.strip().splitlines()[-5:]
        raise SystemExit(f"{what} failed with exit code {finished.returncode}:\n" + "\n".join(tail))


# ---------------------------------------------------------------------------------------------------------------------
# The three lines


def pipeline_line(
    line: Line, sim: SimHost, deployment: str, dsn: str, since: datetime, until: datetime, limiter: str | None
) -> Line:
    sim.reset(deployment)
    finished = run_measured(
        [
            cli_path(),
            "backfill",
            "candles",
            "--instrument",
            INSTRUMENT,
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
            "--quiet",
            "--json",
            "--dsn",
            dsn,
            "--api-url",
            sim.urls[deployment],
        ],
        _env(limiter),
    )
    _check(finished, f"line ({line.label}): deribit-ts backfill candles")
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    candles = summary["datasets"]["candles"]
    served = sim.stats(deployment)
    line.candles = stored_candles(dsn)
    line.seconds = finished.seconds
    line.requests = served["requests_by_method"].get("get_tradingview_chart_data", 0)
    line.peak_rss_mb = finished.peak_rss_mb
    line.reported = candles["inserted"]
    line.throttled = served["errors_by_code"].get(TOO_MANY_REQUESTS, 0)
    line.details = {
        "rows_fetched": candles["rows_fetched"],
        "inserted": candles["inserted"],
        "exchange": summary["exchange"],
        "status": summary["status"],
        "cpu_s": round(finished.cpu_s, 2),
        "machine_busy": finished.machine_busy,
        "rollups_refresh": summary.get("rollups_refresh"),
        **run_phases(dsn, summary["run_id"]),
    }
    return line


def run_phases(dsn: str, run_id: int) -> dict:
    """Where the process's wall clock went, from the run log: time inside the run, and the loading phase
    (first to last window commit) with its rate."""
    with psycopg.connect(dsn) as conn:
        started, finished = conn.execute(
            "SELECT started_at, finished_at FROM deribit_ts.runs WHERE run_id = %s", (run_id,)
        ).fetchone()
        first, last, rows, first_rows = conn.execute(
            """SELECT min(fetched_at), max(fetched_at), sum(rows),
                      (array_agg(rows ORDER BY fetched_at))[1]
                 FROM deribit_ts.coverage WHERE run_id = %s AND dataset = 'candles'""",
            (run_id,),
        ).fetchone()
    phases = {"run_s": round((finished - started).total_seconds(), 3)}
    if first is not None and last > first:
        span = (last - first).total_seconds()
        phases.update(
            first_window_s=round((first - started).total_seconds(), 3),
            loading_s=round(span, 3),
            loading_rate=round((rows - first_rows) / span),
            fetch_s=round((last - started).total_seconds(), 3),  # the run's start to its last window's commit
        )
    return phases


def baseline_line(line: Line, sim: SimHost, dsn: str, since: datetime, until: datetime) -> Line:
    # The catalogue first (not timed), so the baseline can look BTC-PERPETUAL's id up like a real script would.
    catalogue = run_measured(
        [
            cli_path(),
            "backfill",
            "instruments",
            "--currency",
            "BTC",
            "--quiet",
            "--json",
            "--dsn",
            dsn,
            "--api-url",
            sim.urls["deribit"],
        ],
        _env(None),
    )
    _check(catalogue, "loading the instrument catalogue for line (c)")
    sim.reset("deribit")
    options = {"url": sim.urls["deribit"], "dsn": dsn, "since_ms": to_ms(since), "until_ms": to_ms(until)}
    finished = run_measured(
        [sys.executable, __file__, "--role", "baseline", "--role-options", json.dumps(options)], _env(None)
    )
    _check(finished, "line (c): the ccxt + executemany baseline")
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    served = sim.stats("deribit")
    line.candles = stored_candles(dsn)
    line.seconds = report["seconds"]
    line.requests = served["requests_by_method"].get("get_tradingview_chart_data", 0)
    line.peak_rss_mb = finished.peak_rss_mb
    line.reported = report["written"]
    line.throttled = served["errors_by_code"].get(TOO_MANY_REQUESTS, 0)
    line.details = {
        "process_s": round(finished.seconds, 3),
        "cpu_s": round(finished.cpu_s, 2),
        "machine_busy": finished.machine_busy,
    }
    return line


# ---------------------------------------------------------------------------------------------------------------------
# Report


def ratios(a: Line, b: Line, c: Line, b_is_full_history: bool) -> dict:
    # The full history is the one (b) stored when it backfilled it (a count of the table, like every count
    # printed here); otherwise the real exchange's, at (b)'s rate.
    full = b.candles if b_is_full_history else FULL_HISTORY
    return {
        "a_over_target": a.rate / TARGET_A,
        "b_over_ceiling": b.rate / CEILING_B,
        "b_over_c": b.rate / c.rate if c.rate else 0.0,
        "b_over_replaced": b.rate / REPLACED_SYSTEM,
        "full_history_candles": full,
        "full_history_source": "stored by (b)" if b_is_full_history else "real exchange, not stored here",
        "full_history_at_b_s": full / b.rate if b.rate else float("inf"),
        "b_run_over_fetch": b.details["run_s"] / b.details["fetch_s"] if b.details.get("fetch_s") else float("inf"),
    }


def checks(lines: list[Line], r: dict, *, smoke: bool = False) -> dict[str, bool | None]:
    """Each target met (True), missed (False), or not judged (None): a smoke run's few days are dominated by
    start-up and the limiter's first empty pool, so its rates say nothing about the targets; what it can
    judge (no 10028, every line stored what it reported) it still judges."""
    a, b, c = lines
    rates = {
        "a >= 150,000 candles/s": a.rate >= TARGET_A,
        "b >= 85% of the allowance's ceiling": r["b_over_ceiling"] >= TARGET_B_SHARE,
        "b >= 3 x c": r["b_over_c"] >= TARGET_B_OVER_C,
        "b: full history in under a minute": r["full_history_at_b_s"] < 60,
        "b > 25 x the replaced system": r["b_over_replaced"] > 25,
        "b: the run, rollups refreshed, within 25% of its fetch time": r["b_run_over_fetch"] <= REFRESH_SLACK,
    }
    return {
        **{name: None if smoke else ok for name, ok in rates.items()},
        "no 10028 from the simulator in (b)": b.throttled == 0,
        "every line stored what it reported": all(x.candles == x.reported for x in lines),
    }


def print_report(header: list[str], lines: list[Line], r: dict, verdicts: dict[str, bool]) -> None:
    for text in header:
        print(text)
    print()
    print(f"{'line':<46}{'candles':>11}{'seconds':>9}{'candles/s':>12}{'requests':>10}{'peak RSS':>11}")
    for x in lines:
        print(
            f"{'(' + x.label + ') ' + x.title:<46}{x.candles:>11,}{x.seconds:>9.2f}{x.rate:>12,.0f}"
            f"{x.requests:>10,}{x.peak_rss_mb:>8.0f} MB"
        )
    a, b, _ = lines
    for x in (a, b):
        d = x.details
        if "loading_rate" in d:
            print(
                f"    ({x.label}) process {x.seconds:.2f} s (CPU {d['cpu_s']:.2f} s) = run {d['run_s']:.2f} s + "
                f"start-up/exit {x.seconds - d['run_s']:.2f} s; first window committed "
                f"{d['first_window_s']:.2f} s into the run, then {d['loading_rate']:,} candles/s"
                + (f"; all CPUs {d['machine_busy']:.0%} busy" if d.get("machine_busy") is not None else "")
            )
        refresh = d.get("rollups_refresh")
        if refresh and "fetch_s" in d:
            m = refresh["meanwhile"]
            print(
                f"    ({x.label}) fetching ended {d['fetch_s']:.2f} s into the run; rollups refreshed {m['refreshes']} "
                f"time(s) meanwhile ({m['seconds']:.2f} s, {m['days']:,} day(s)), then {refresh['final_s']:.2f} s "
                f"at the end; run / fetch {d['run_s'] / d['fetch_s']:.2f}, process / fetch "
                f"{x.seconds / d['fetch_s']:.2f}"
            )
    print()
    print(f"(a) / target 150,000 candles/s            {r['a_over_target']:.2f}x   (target >= 1x)")
    print(f"(b) / allowance ceiling 100,000 candles/s {r['b_over_ceiling']:.1%}  (target >= 85%)")
    print(f"(b) / (c)                                 {r['b_over_c']:.2f}x   (target >= 3x)")
    print(f"(b) / replaced system 3,115 candles/s     {r['b_over_replaced']:.1f}x   (target > 25x)")
    print(
        f"full BTC-PERPETUAL history ({r['full_history_candles']:,} candles, {r['full_history_source']}) "
        f"at (b)'s rate: {r['full_history_at_b_s']:.1f} s"
    )
    print(f"(b) run, rollups refreshed / its fetch time  {r['b_run_over_fetch']:.2f}   (target <= {REFRESH_SLACK})")
    print(f"10028 answers in (b): {b.throttled}")
    print()
    for name, ok in verdicts.items():
        print(
            f"{'n/a ' if ok is None else 'PASS' if ok else 'MISS'}  {name}"
            + ("  (not judged by a --quick smoke run)" if ok is None else "")
        )


# ---------------------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "--since",
        default=LISTED,
        help="start of every line's range (UTC date; default: the day BTC-PERPETUAL was listed)",
    )
    parser.add_argument("--days-a", type=int, help="days of candles for (a) (default: the whole history up to --now)")
    parser.add_argument("--days-b", type=int, help="days of candles for (b) (default: the whole history up to --now)")
    parser.add_argument("--days-c", type=int, default=60, help="days of candles for (c), the slow baseline")
    parser.add_argument("--now", default="2025-11-01", help="the simulator's frozen 'now' (UTC date)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="simulator latency for (b) and (c)")
    parser.add_argument("--quick", action="store_true", help="small ranges for a smoke run (< 30 s)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("DERIBIT_TS_DSN"),
        help="TimescaleDB server to create the benchmark's databases on (default: a private "
        "embedded cluster in a temporary home); also DERIBIT_TS_DSN",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--role", choices=("bench", "sim", "baseline"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--role-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.days_a, args.days_b, args.days_c = 30, 10, 5
    return args


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def bench(args: argparse.Namespace) -> int:
    since, now = _utc(args.since), _utc(args.now)
    last_day = now.replace(hour=0, minute=0, second=0, microsecond=0)  # ranges end at a whole day before `now`
    until = {
        k: since + timedelta(days=days) if days else last_day
        for k, days in (("a", args.days_a), ("b", args.days_b), ("c", args.days_c))
    }
    if max(until.values()) > last_day or since < _utc(LISTED):
        raise SystemExit(f"every range must lie between {LISTED} and --now {args.now}: adjust --since or --days-*")
    began, load_at_start = time.perf_counter(), os.getloadavg()[0]
    simulator = sim_host(__file__, now, args.latency_ms, since, max(until.values()))
    with simulator as sim, database_server(args.dsn) as (server, where):
        header = [
            f"deribit-ts backfill benchmark: {INSTRUMENT} 1-minute candles from {since:%Y-%m-%d}, "
            f"simulator --now {now:%Y-%m-%d} (own process, cache warmed in {sim.warm_s:.1f} s)",
            f"database: {server_version(server)}, {where}; {os.cpu_count()} CPUs, "
            f"load average {load_at_start:.1f} before the run",
        ]
        lines = []
        with fresh_database(server, "a") as dsn:
            lines.append(
                pipeline_line(
                    Line("a", "pipeline, no latency, no rate limit"), sim, "off", dsn, since, until["a"], "off"
                )
            )
        with fresh_database(server, "b") as dsn:
            lines.append(
                pipeline_line(
                    Line("b", f"pipeline, Deribit limits, {args.latency_ms:g} ms"),
                    sim,
                    "deribit",
                    dsn,
                    since,
                    until["b"],
                    None,
                )
            )
        with fresh_database(server, "c") as dsn:
            lines.append(
                baseline_line(Line("c", "ccxt fetch_ohlcv + executemany, as (b)"), sim, dsn, since, until["c"])
            )
    r = ratios(*lines, b_is_full_history=args.days_b is None and since == _utc(LISTED))
    verdicts = checks(lines, r, smoke=args.quick)
    total = time.perf_counter() - began
    if args.json:
        print(
            json.dumps(
                {
                    "header": header,
                    "lines": [{**asdict(x), "rate": x.rate} for x in lines],
                    "ratios": r,
                    "checks": verdicts,
                    "total_s": total,
                },
                default=str,
            )
        )
    else:
        print_report(header, lines, r, verdicts)
        print(f"\nbenchmark total {total:.0f} s")
    return 0 if all(ok is not False for ok in verdicts.values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "sim":
        serve_sim(json.loads(args.role_options))
        return 0
    if args.role == "baseline":
        run_baseline(json.loads(args.role_options))
        return 0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
