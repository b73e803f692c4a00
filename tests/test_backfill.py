"""The backfill engine end to end: the real CLI and ccxt, real HTTP to the simulator, a real TimescaleDB.

Every test compares the database with the simulator's own market truth, row for row.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest
from helpers import backfill, cli_command, clone_database, drop_database, run_cli

from deribit_ts.db.connect import server_reason
from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.timeutil import HOUR_MS, MINUTE_MS, ceil_ms, from_ms, to_ms

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}


@pytest.fixture(scope="module")
def sim():
    # `backfill all` includes options (their candles and trades, a task or more each): two strikes per expiry keep
    # every expiry, and so every tier, with a fifth of the options of a quarter of the real-sized chain.
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", strikes_per_expiry=2)) as handle:
        yield handle


def stored_candles(dsn: str, name: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT ts, open, high, low, close, volume, cost FROM deribit.ohlcv_1m
               WHERE instrument_name = %s ORDER BY ts""",
            (name,),
        ).fetchall()


def true_candles(sim, name: str, since: datetime, until: datetime) -> list[tuple]:
    # The chart endpoint includes both ends: ask for the buckets opening before `until`.
    truth = sim.market.candles(name, to_ms(since), ceil_ms(to_ms(until), MINUTE_MS) - MINUTE_MS)
    columns = [truth[c] for c in ("ticks", "open", "high", "low", "close", "volume", "cost")]
    return [(from_ms(t), *values) for t, *values in zip(*columns, strict=True) if to_ms(since) <= t < to_ms(until)]


def expected_futures(sim, since: datetime, until: datetime) -> dict[str, tuple[datetime, datetime]]:
    """BTC perpetual and dated futures alive in [since, until) per the simulator's catalogue, with their ranges."""
    wanted = {}
    for expired in (False, True):
        for inst in sim.market.instruments("BTC", "future", expired=expired):
            created = from_ms(inst.creation_ms).replace(second=0, microsecond=0)
            end = min(until, from_ms(inst.expiry_ms)) if not inst.is_perpetual else until
            start = max(since, created)
            if start < end:
                wanted[inst.name] = (start, end)
    return wanted


def table_fingerprint(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT i.instrument_name, count(*), sum(c.close), sum(c.volume), min(c.ts), max(c.ts)
               FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
               GROUP BY 1 ORDER BY 1"""
        ).fetchall()


@pytest.mark.slow
def test_backfill_all_equals_the_simulator_row_for_row(sim, new_db):
    # Six days: the weekly future expiring on Friday 23 February 08:00 inside, the index's minute series (the
    # last two days before the exchange's now) at the end; the trade tapes grow with every day.
    since, until = datetime(2024, 2, 23, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)
    summary = backfill(
        new_db, sim.url, "all", "--currency", "BTC", "--since", since.isoformat(), "--until", until.isoformat()
    )
    assert summary["status"] == "ok"
    futures = expected_futures(sim, since, until)
    assert "BTC-PERPETUAL" in futures
    assert any(
        from_ms(i.expiry_ms) < until for i in sim.market.instruments("BTC", "future", expired=True) if i.name in futures
    ), "the window should include an expired future"
    for name, (start, end) in futures.items():
        assert stored_candles(new_db, name) == true_candles(sim, name, start, end), name
    # `backfill all` includes options (tests/test_backfill_options.py checks their candles).
    options = summary["coverage"]["candles"]["keys"] - len(futures)
    assert options == sum(summary["tiers"].values()) > 0
    assert summary["coverage"]["candles"]["complete"] == summary["coverage"]["candles"]["keys"]

    with psycopg.connect(new_db) as conn:
        funding = conn.execute(
            """SELECT ts, interest_1h, interest_8h, index_price, prev_index_price FROM deribit.funding_rates
               WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY ts"""
        ).fetchall()
        index_rows = conn.execute(
            "SELECT ts, price, resolution FROM deribit.index_prices WHERE index_name = 'btc_usd' ORDER BY ts"
        ).fetchall()
        incomplete = conn.execute("SELECT dataset, key FROM deribit.coverage WHERE NOT complete").fetchall()
        priorities = dict(
            conn.execute(
                "SELECT dataset, int4range(min(priority), max(priority), '[]') FROM deribit_ts.tasks GROUP BY 1"
            )
        )
    truth = sim.market.funding("BTC-PERPETUAL", to_ms(since) - 1, to_ms(until) - 1)
    assert funding == [
        (from_ms(r["timestamp"]), r["interest_1h"], r["interest_8h"], r["index_price"], r["prev_index_price"])
        for r in truth
    ]
    assert incomplete == []
    # `backfill all` works in its documented order: funding and index (cheap) before any candles.
    assert (
        priorities["funding"].upper
        <= priorities["index"].lower
        < priorities["index"].upper
        <= priorities["candles"].lower
    )

    # Index: every price is the simulator's index, at the finest resolution served for its period.
    assert index_rows
    assert all(price == sim.market.index("BTC", to_ms(ts)) for ts, price, _ in index_rows)
    minute_rows = [ts for ts, _, res in index_rows if res == timedelta(minutes=1)]
    assert minute_rows and min(minute_rows) >= until - timedelta(days=2, minutes=1)
    assert all(res == timedelta(hours=1) for ts, _, res in index_rows if ts < min(minute_rows))


@pytest.mark.slow
def test_second_run_changes_nothing(sim, new_db):
    args = ("candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-02-01", "--until", "2024-02-08")
    first = backfill(new_db, sim.url, *args)
    assert first["datasets"]["candles"]["inserted"] == 7 * 1440 - outage_minutes(sim, "2024-02-01", "2024-02-08")
    before = table_fingerprint(new_db)
    second = backfill(new_db, sim.url, *args)
    assert second["datasets"]["candles"]["inserted"] == 0
    assert second["datasets"]["candles"]["revised"] == 0
    assert table_fingerprint(new_db) == before
    runs = json.loads(run_cli("runs", "--last", "2", "--json", "--dsn", new_db).stdout)
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert runs[1]["datasets"]["candles"]["inserted"] == first["datasets"]["candles"]["inserted"]


def outage_minutes(sim, since: str, until: str) -> int:
    a, b = (
        to_ms(datetime.fromisoformat(since).replace(tzinfo=UTC)),
        to_ms(datetime.fromisoformat(until).replace(tzinfo=UTC)),
    )
    return sum(1 for t in range(a, b, MINUTE_MS) if sim.market.in_outage(t))


def test_revised_candles_are_counted_and_the_newer_value_wins(sim, new_db):
    args = ("candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-02-10", "--until", "2024-02-11")
    backfill(new_db, sim.url, *args)
    with psycopg.connect(new_db, autocommit=True) as conn:
        # Pretend an earlier fetch had a preliminary value and forget that the range was fetched.
        conn.execute("""UPDATE deribit.candles_1m SET close = close + 1
                        WHERE ts >= '2024-02-10 05:00+00' AND ts < '2024-02-10 05:03+00'""")
        conn.execute("DELETE FROM deribit_ts.coverage")
    summary = backfill(new_db, sim.url, *args)
    assert summary["datasets"]["candles"]["revised"] == 3
    assert summary["datasets"]["candles"]["inserted"] == 0
    start, end = datetime(2024, 2, 10, tzinfo=UTC), datetime(2024, 2, 11, tzinfo=UTC)
    assert stored_candles(new_db, "BTC-PERPETUAL") == true_candles(sim, "BTC-PERPETUAL", start, end)


@pytest.mark.slow
def test_with_ten_percent_faults_the_result_is_the_same(new_db):
    config = SimConfig(now=NOW, rate_limit="off", fault_rate=0.1, stall_seconds=0.2)
    with run_in_thread(config) as faulty:
        summary = backfill(
            new_db,
            faulty.url,
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2023-09-01",
            "--until",
            "2024-02-01",
        )
        faults = sum(faulty.stats()["faults_by_kind"].values())
        truth = true_candles(
            faulty, "BTC-PERPETUAL", datetime(2023, 9, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
        )
    assert faults > 0 and summary["exchange"]["retries"] > 0
    # Retries are accounted to the task whose request it was (the rest: catalogue and clock requests).
    assert 0 < summary["datasets"]["candles"]["retries"] <= summary["exchange"]["retries"]
    assert stored_candles(new_db, "BTC-PERPETUAL") == truth


@pytest.mark.slow
def test_deribit_default_limits_never_trigger_10028(new_db):
    with run_in_thread(SimConfig(now=NOW, rate_limit="deribit")) as limited:
        summary = run_cli(
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2023-09-01",
            "--until",
            "2024-03-01",
            "--json",
            "--dsn",
            new_db,
            "--api-url",
            limited.url,
        )
        assert summary.returncode == 0, summary.stderr
        stats = limited.stats()
    errors = {str(code): n for code, n in stats["errors_by_code"].items()}
    assert errors.get("10028", 0) == 0
    assert stats["requests_by_method"].get("get_tradingview_chart_data", 0) >= 50  # the limiter was exercised
    assert json.loads(summary.stdout)["exchange"]["throttled"] == 0


@pytest.mark.slow
def test_two_concurrent_processes_share_one_plan(sim, new_db):
    args = [
        "backfill",
        "candles",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        "2023-06-01",
        "--until",
        "2024-02-01",
        "--quiet",
        "--workers",
        "4",
        "--dsn",
        new_db,
        "--api-url",
        sim.url,
    ]
    env = {**os.environ, **NO_LIMITER}
    procs = [subprocess.Popen(cli_command(*args), env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    start, end = datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    assert stored_candles(new_db, "BTC-PERPETUAL") == true_candles(sim, "BTC-PERPETUAL", start, end)
    with psycopg.connect(new_db) as conn:
        overlapping = conn.execute(
            """SELECT count(*) FROM deribit_ts.coverage a JOIN deribit_ts.coverage b
                 ON a.ctid < b.ctid AND a.dataset = b.dataset AND a.key = b.key AND a.fetched && b.fetched"""
        ).fetchone()
        workers = conn.execute("SELECT count(DISTINCT pid) FROM deribit_ts.runs").fetchone()
    assert overlapping == (0,)  # no range was fetched twice
    assert workers == (2,)


def wait_for_first_rows(dsn: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        with psycopg.connect(dsn) as conn:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM deribit.candles_1m)").fetchone()[0]:
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_same_table(pg_server, migrated_template):
    rng = random.Random(20241124)
    # Three months answered slowly (~27 requests of 150 ms over 3 workers): the load lasts seconds after its first
    # rows, so a kill up to a second later lands in its middle, and each trial writes and compares few rows.
    since, until = datetime(2023, 11, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    config = SimConfig(now=NOW, rate_limit="off", latency_ms=150)
    interrupted = 0
    with run_in_thread(config) as slow:
        truth = true_candles(slow, "BTC-PERPETUAL", since, until)
        for trial in range(5):
            name = clone_database(pg_server, migrated_template, f"kill{trial}")
            dsn = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
            try:
                args = [
                    "backfill",
                    "candles",
                    "--instrument",
                    "BTC-PERPETUAL",
                    "--since",
                    since.isoformat(),
                    "--until",
                    until.isoformat(),
                    "--quiet",
                    "--workers",
                    "3",
                    "--dsn",
                    dsn,
                    "--api-url",
                    slow.url,
                ]
                env = {**os.environ, **NO_LIMITER}
                victim = subprocess.Popen(cli_command(*args), env=env, stderr=subprocess.DEVNULL)
                wait_for_first_rows(dsn, victim)
                time.sleep(rng.uniform(0.0, 1.0))  # then kill at a random point of the load
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                with psycopg.connect(dsn) as conn:
                    (partial,) = conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone()
                interrupted += 0 < partial < len(truth)
                resumed = subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=300)
                assert resumed.returncode == 0, resumed.stderr
                assert stored_candles(dsn, "BTC-PERPETUAL") == truth, f"trial {trial}"
            finally:
                drop_database(pg_server, name)
    assert interrupted >= 3, "most kills should land in the middle of the backfill"


def test_unknown_instrument_and_bad_ranges_fail_in_one_line(sim, new_db):
    result = run_cli(
        "backfill", "candles", "--instrument", "BTC-PERPETUALL", "--dsn", new_db, "--api-url", sim.url, env=NO_LIMITER
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("deribit-ts: error: unknown instrument 'BTC-PERPETUALL'")
    assert "BTC-PERPETUAL" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(
        "backfill", "candles", "--since", "2024-02-01", "--until", "2024-01-01", "--dsn", new_db, "--api-url", sim.url
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and "--since" in result.stderr
    result = run_cli("backfill", "candles", "--since", "yesterday", "--dsn", new_db, "--api-url", sim.url)
    assert result.returncode != 0 and "ISO-8601" in result.stderr


def test_unreachable_exchange_fails_in_one_line_and_writes_nothing(new_db):
    result = run_cli(
        "backfill",
        "candles",
        "--dsn",
        new_db,
        "--api-url",
        "http://127.0.0.1:1",
        env={"DERIBIT_TS_MAX_RETRIES": "1"},
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the exchange at http://127.0.0.1:1" in lines[0], result.stderr
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks").fetchone() == (0,)


def test_funding_windows_cover_hours_exactly(sim, new_db):
    backfill(
        new_db, sim.url, "funding", "--instrument", "BTC-PERPETUAL", "--since", "2023-01-01", "--until", "2023-04-01"
    )
    with psycopg.connect(new_db) as conn:
        got = [
            r[0]
            for r in conn.execute(
                "SELECT ts FROM deribit.funding_rates WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY ts"
            )
        ]
    start, end = to_ms(datetime(2023, 1, 1, tzinfo=UTC)), to_ms(datetime(2023, 4, 1, tzinfo=UTC))
    assert got == [from_ms(t) for t in range(start, end, HOUR_MS) if not sim.market.in_outage(t)]


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_releases_the_plan(new_db):
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", latency_ms=40)) as slow:
        args = [
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2023-01-01",
            "--until",
            "2024-02-01",
            "--quiet",
            "--workers",
            "2",
            "--dsn",
            new_db,
            "--api-url",
            slow.url,
        ]
        process = subprocess.Popen(
            cli_command(*args), env={**os.environ, **NO_LIMITER}, stderr=subprocess.PIPE, text=True
        )
        wait_for_first_rows(new_db, process)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state = 'running'").fetchone() == (0,)
        assert conn.execute("SELECT status FROM deribit_ts.runs").fetchall() == [("interrupted",)]


def test_recent_candles_are_fetched_again_and_revisions_win(new_db):
    """The exchange may still correct its newest candles: a later run re-fetches the unsettled tail."""
    with run_in_thread(SimConfig(now=NOW, rate_limit="off")) as live:
        args = ("candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-03-01T06:00")
        first = backfill(new_db, live.url, *args)
        since = datetime(2024, 3, 1, 6, tzinfo=UTC)
        before = true_candles(live, "BTC-PERPETUAL", since, NOW.replace(second=0))
        assert stored_candles(new_db, "BTC-PERPETUAL") == before
        live.set_now(to_ms(NOW + timedelta(minutes=20)))
        second = backfill(new_db, live.url, *args)
        after = true_candles(live, "BTC-PERPETUAL", since, (NOW + timedelta(minutes=20)).replace(second=0))
    assert stored_candles(new_db, "BTC-PERPETUAL") == after
    revised = sum(1 for old, new in zip(before, after, strict=False) if old != new)
    assert second["datasets"]["candles"]["revised"] == revised
    assert second["datasets"]["candles"]["inserted"] == len(after) - len(before) == 20
    # Only the unsettled tail (30 minutes) and the new minutes were fetched again, not the whole range.
    assert second["datasets"]["candles"]["rows_fetched"] == 30 + 20
    assert first["datasets"]["candles"]["inserted"] == len(before)


@pytest.mark.parametrize("cap,cut", [(1000, "old"), (1000, "new"), (2999, "new")])
def test_exact_whatever_the_chart_endpoint_truncates(new_db, cap, cut):
    """Deribit's per-request cap and which end it cuts are unconfirmed: any variant gives the same table."""
    config = SimConfig(now=NOW, rate_limit="off", chart_max_candles=cap, chart_truncate=cut)
    since, until = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC)
    with run_in_thread(config) as odd:
        summary = backfill(
            new_db,
            odd.url,
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
        )
        truth = true_candles(odd, "BTC-PERPETUAL", since, until)
    assert stored_candles(new_db, "BTC-PERPETUAL") == truth
    assert summary["coverage"]["candles"]["complete"] == 1


@pytest.mark.parametrize("cap", [60, 100])
def test_exact_when_a_capped_answer_holds_only_empty_buckets(new_db, cap):
    """Deribit's cap counts buckets from the window's end (docs/deribit.md): a window whose newest buckets fall
    in an outage answers no_data although older buckets have candles. An empty answer is no proof of an empty
    window wider than what answers are known to span, so such a window is asked for again in pieces. (Caps
    below the assumed floor of 1,000, the only ones the simulator's outages are long enough for, are learnt
    from the first answer seen cut.)"""
    config = SimConfig(now=NOW, rate_limit="off", chart_max_candles=cap, chart_truncate="old")
    with run_in_thread(config) as odd:
        outage_start, outage_end = next((s, e) for s, e in odd.market.outage_windows() if e - s > cap * MINUTE_MS)
        since, until = from_ms(outage_start) - timedelta(days=1), from_ms(outage_end)  # a window ending in it
        backfill(
            new_db,
            odd.url,
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
        )
        truth = true_candles(odd, "BTC-PERPETUAL", since, until)
    assert len(truth) == 1440 and stored_candles(new_db, "BTC-PERPETUAL") == truth


def interrupt_then_resume(dsn: str, interrupt, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list]:
    """Start a BTC-PERPETUAL backfill against a slow simulator, call `interrupt(sim)` once rows arrive, wait for
    the process to end, then resume the same command against a fresh simulator of the same market."""
    since, until = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)

    def args(url: str) -> list[str]:
        return [
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
            "--quiet",
            "--workers",
            "3",
            "--dsn",
            dsn,
            "--api-url",
            url,
        ]

    full_env = {**os.environ, **NO_LIMITER, **(env or {})}
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", latency_ms=40)) as slow:
        process = subprocess.Popen(cli_command(*args(slow.url)), env=full_env, stderr=subprocess.PIPE, text=True)
        wait_for_first_rows(dsn, process)
        interrupt(slow)
    _, err = process.communicate(timeout=180)
    first = subprocess.CompletedProcess(process.args, process.returncode, "", err)
    with run_in_thread(SimConfig(now=NOW, rate_limit="off")) as again:
        resumed = subprocess.run(
            cli_command(*args(again.url)), env=full_env, capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr
        truth = true_candles(again, "BTC-PERPETUAL", since, until)
    assert stored_candles(dsn, "BTC-PERPETUAL") == truth
    return first, truth


@pytest.mark.slow
def test_lost_database_connection_fails_in_one_line_and_resumes_exactly(new_db):
    def terminate_backends(_sim) -> None:
        time.sleep(0.5)
        with psycopg.connect(new_db, autocommit=True) as conn:
            conn.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                            WHERE datname = current_database() AND application_name = 'deribit-ts backfill'""")

    first, _ = interrupt_then_resume(new_db, terminate_backends)
    assert first.returncode != 0
    lines = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "lost the database connection" in lines[0] and "re-run" in lines[0], first.stderr
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state <> 'done'").fetchone() == (0,)


def test_a_server_error_is_told_without_its_context(db):
    """A connection terminated inside a PL/pgSQL function carries the whole call chain and statement as CONTEXT:
    quoted in full, it pushed "re-run the same command" off the end of the one-line error."""
    statement = "SELECT " + " + ".join(["1"] * 400)
    with psycopg.connect(db, autocommit=True) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(
            f"""DO $$ BEGIN PERFORM ({statement});
                   RAISE EXCEPTION 'terminating connection' USING DETAIL = 'the detail'; END $$"""
        )
    assert "CONTEXT" in str(caught.value) or "PL/pgSQL" in str(caught.value)
    assert server_reason(caught.value) == "terminating connection (the detail)"
    assert server_reason(psycopg.OperationalError("server closed\n\tthe connection")) == "server closed the connection"


@pytest.mark.slow
def test_lost_network_fails_in_one_line_and_resumes_exactly(new_db):
    # Leaving the simulator's block stops it: every request in flight and every retry finds nobody listening.
    first, _ = interrupt_then_resume(new_db, lambda _sim: time.sleep(0.5), env={"DERIBIT_TS_MAX_RETRIES": "2"})
    assert first.returncode != 0
    lines = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the exchange" in lines[0], first.stderr


def true_funding(sim, name: str, since: datetime, until: datetime) -> list[tuple]:
    return [
        (from_ms(r["timestamp"]), r["interest_1h"], r["interest_8h"], r["index_price"], r["prev_index_price"])
        for r in sim.market.funding(name, to_ms(since) - 1, to_ms(until) - 1)
        if to_ms(since) <= r["timestamp"] < to_ms(until)
    ]


def stored_funding(dsn: str, name: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT ts, interest_1h, interest_8h, index_price, prev_index_price FROM deribit.funding_rates
               WHERE instrument_name = %s ORDER BY ts""",
            (name,),
        ).fetchall()


def test_bounds_off_the_minute_keep_the_straddling_candle(sim, new_db):
    """A row belongs to a request when since <= ts < until: an --until at 11:00:30 takes the 11:00 candle, and
    coverage records whole minutes only, so the next range starting at 11:00 loses nothing."""
    first = backfill(
        new_db,
        sim.url,
        "candles",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        "2024-02-01T10:00",
        "--until",
        "2024-02-01T11:00:30",
    )
    start, straddle = datetime(2024, 2, 1, 10, tzinfo=UTC), datetime(2024, 2, 1, 11, 0, 30, tzinfo=UTC)
    assert stored_candles(new_db, "BTC-PERPETUAL") == true_candles(sim, "BTC-PERPETUAL", start, straddle)
    assert first["datasets"]["candles"]["inserted"] == 61
    backfill(
        new_db,
        sim.url,
        "candles",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        "2024-02-01T11:00",
        "--until",
        "2024-02-01T12:00",
    )
    end = datetime(2024, 2, 1, 12, tzinfo=UTC)
    assert stored_candles(new_db, "BTC-PERPETUAL") == true_candles(sim, "BTC-PERPETUAL", start, end)
    assert len(stored_candles(new_db, "BTC-PERPETUAL")) == 120
    with psycopg.connect(new_db) as conn:
        bounds = conn.execute("SELECT lower(fetched), upper(fetched) FROM deribit_ts.coverage").fetchall()
        complete = conn.execute("SELECT bool_and(complete) FROM deribit.coverage").fetchone()
    assert all(a.second == b.second == 0 and a.microsecond == b.microsecond == 0 for a, b in bounds), bounds
    assert complete == (True,)


def test_funding_bounds_off_the_hour_keep_the_straddling_row(sim, new_db):
    since, straddle = datetime(2023, 1, 1, 0, 30, tzinfo=UTC), datetime(2023, 1, 2, 5, 30, tzinfo=UTC)
    backfill(
        new_db,
        sim.url,
        "funding",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        since.isoformat(),
        "--until",
        straddle.isoformat(),
    )
    got = stored_funding(new_db, "BTC-PERPETUAL")
    assert got == true_funding(sim, "BTC-PERPETUAL", since, straddle)
    assert got[0][0] == datetime(2023, 1, 1, 1, tzinfo=UTC) and got[-1][0] == datetime(2023, 1, 2, 5, tzinfo=UTC)
    end = datetime(2023, 1, 2, 10, tzinfo=UTC)
    backfill(
        new_db,
        sim.url,
        "funding",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        "2023-01-02T05:00",
        "--until",
        end.isoformat(),
    )
    assert stored_funding(new_db, "BTC-PERPETUAL") == true_funding(sim, "BTC-PERPETUAL", since, end)
    with psycopg.connect(new_db) as conn:
        bounds = conn.execute("SELECT lower(fetched), upper(fetched) FROM deribit_ts.coverage").fetchall()
    assert all(a.minute == b.minute == a.second == b.second == 0 for a, b in bounds), bounds


@contextlib.contextmanager
def tampering_proxy(upstream: str, tamper):
    """A real HTTP server in front of the simulator that forwards every request and lets `tamper(method, params,
    reply)` rewrite a JSON-RPC reply (return None to send it unchanged, or (status, body), or 'drop' to close the
    connection without answering): an exchange that misbehaves on chosen requests only."""

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            try:
                with urllib.request.urlopen(upstream + self.path, timeout=30) as reply:
                    status, body = reply.status, reply.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
            changed = tamper(parts.path.rsplit("/", 1)[-1], dict(parse_qsl(parts.query)), json.loads(body))
            if changed == "drop":
                self.close_connection = True
                return
            if changed is not None:
                status, body = changed[0], json.dumps(changed[1]).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_failing_tasks_are_recorded_and_the_others_go_on(sim, new_db):
    """One task's window answered 11094 on every try, one with chart columns of different lengths, one with the
    connection dropped every time while the rest of the exchange answers: those three tasks fail with their reason
    recorded, every other task completes, the run exits non-zero in one line; a re-run completes the table."""
    poisoned = {
        "11094": datetime(2023, 7, 1, tzinfo=UTC),
        "columns": datetime(2023, 10, 1, tzinfo=UTC),
        "drop": datetime(2024, 1, 25, tzinfo=UTC),
    }

    def hit(params: dict, day: datetime) -> bool:
        return int(params["start_timestamp"]) <= to_ms(day) <= int(params["end_timestamp"])

    def tamper(method: str, params: dict, reply: dict):
        if method != "get_tradingview_chart_data":
            return None
        if hit(params, poisoned["11094"]):
            return 400, {"jsonrpc": "2.0", "error": {"code": 11094, "message": "internal_server_error"}}
        if hit(params, poisoned["columns"]):
            reply["result"]["open"] = reply["result"]["open"][:-1]
            return 200, reply
        return "drop" if hit(params, poisoned["drop"]) else None

    since, until = datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    args = (
        "candles",
        "--instrument",
        "BTC-PERPETUAL",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        "--workers",
        "4",
    )
    with tampering_proxy(sim.url, tamper) as url:
        result = run_cli(
            "backfill",
            *args,
            "--quiet",
            "--dsn",
            new_db,
            "--api-url",
            url,
            env={**NO_LIMITER, "DERIBIT_TS_MAX_RETRIES": "2"},
        )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "3 task(s) failed" in lines[0] and "deribit-ts runs" in lines[0], result.stderr
    with psycopg.connect(new_db) as conn:
        states = conn.execute("SELECT state, range_start, range_end, last_error FROM deribit_ts.tasks").fetchall()
        run = conn.execute("SELECT status, error FROM deribit_ts.runs").fetchone()
    failed = {
        next(kind for kind, day in poisoned.items() if a <= day < b): error
        for state, a, b, error in states
        if state == "failed"
    }
    assert set(failed) == set(poisoned), states
    assert "Deribit error 11094 internal_server_error (gave up after 3 attempts)" in failed["11094"]
    assert "columns of different lengths (ticks 5000, open 4999" in failed["columns"]
    assert "get_tradingview_chart_data" in failed["drop"] and "gave up after 3 attempts" in failed["drop"]
    assert all(state == "done" for state, *_ in states if state != "failed")
    assert run[0] == "failed" and run[1].startswith("3 task(s) failed")

    backfill(new_db, sim.url, *args)  # the exchange behaves again: the failed tasks are planned anew
    assert stored_candles(new_db, "BTC-PERPETUAL") == true_candles(sim, "BTC-PERPETUAL", since, until)


@contextlib.contextmanager
def connection_slots_left(dsn: str, free: int):
    """Occupy the server's connections until only `free` are left (the cap is max_connections for everyone,
    superusers included once the reserved slots are gone)."""
    held: list[psycopg.Connection] = []
    try:
        while True:
            try:
                held.append(psycopg.connect(dsn, autocommit=True))
            except psycopg.OperationalError as exc:
                assert "too many clients" in str(exc), exc
                break
        for conn in held[len(held) - free :]:
            conn.close()
        del held[len(held) - free :]
        time.sleep(0.3)  # the server frees a slot when the backend has exited
        yield
    finally:
        for conn in held:
            conn.close()


@pytest.mark.slow
def test_workers_are_capped_at_the_tasks_there_are(sim, new_db):
    """--workers 64 for one task opens one worker connection, not 64: with 3 slots left the run still fits."""
    with connection_slots_left(new_db, 3):
        summary = backfill(
            new_db,
            sim.url,
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2024-02-01",
            "--until",
            "2024-02-02",
            "--workers",
            "64",
        )
    assert summary["status"] == "ok" and summary["datasets"]["candles"]["tasks"] == 1


@pytest.mark.slow
def test_too_many_workers_for_the_database_fail_in_one_line(sim, new_db):
    with connection_slots_left(new_db, 2):
        result = run_cli(
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2023-06-01",
            "--until",
            "2024-02-01",
            "--workers",
            "8",
            "--quiet",
            "--dsn",
            new_db,
            "--api-url",
            sim.url,
            env=NO_LIMITER,
        )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert lines == [
        "deribit-ts: error: the database refused more connections (max_connections): lower --workers "
        "/ DERIBIT_TS_WORKERS"
    ], result.stderr


@pytest.mark.slow
def test_two_processes_on_one_host_share_deribits_limit(new_db):
    """Deribit limits public requests per IP: two backfills on one host split the allowance between them, so the
    simulator, enforcing Deribit's default limits per client address, answers none of them with 10028. The chart
    endpoint answers 1,000 candles a request here (a cap the client copes with, test_exact_whatever_...): as many
    requests (~400) as four years at 5,000 a request, for a fifth of the rows to write and compare."""
    since, until = datetime(2023, 5, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    with run_in_thread(SimConfig(now=NOW, rate_limit="deribit", chart_max_candles=1000)) as limited:
        args = [
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
            "--quiet",
            "--workers",
            "4",
            "--dsn",
            new_db,
            "--api-url",
            limited.url,
        ]
        procs = [
            subprocess.Popen(cli_command(*args), env=dict(os.environ), stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        stats = limited.stats()
        truth = true_candles(limited, "BTC-PERPETUAL", since, until)
    assert stats["requests_by_method"].get("get_tradingview_chart_data", 0) >= 300  # > the server's burst of 100
    errors = {str(code): n for code, n in stats["errors_by_code"].items()}
    assert errors.get("10028", 0) == 0, errors
    assert stored_candles(new_db, "BTC-PERPETUAL") == truth
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(DISTINCT pid), sum(throttled) FROM deribit_ts.runs").fetchone() == (2, 0)


@pytest.mark.slow
def test_a_bounded_command_works_only_its_own_range_and_resume_finishes_the_rest(sim, new_db):
    """An earlier, interrupted plan (BTC-PERPETUAL from January, ETH-PERPETUAL too) is left waiting: a bounded
    `backfill candles` works only its two days (cutting the earlier tasks that straddle its bounds) and says what
    it left; `backfill resume` then finishes the earlier plan; the table equals the market."""
    backfill(new_db, sim.url, "instruments", "--currency", "BTC,ETH")
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 20, tzinfo=UTC)
    with psycopg.connect(new_db, autocommit=True) as conn:
        for name in ("BTC-PERPETUAL", "ETH-PERPETUAL"):  # what `backfill all` planned before it was interrupted
            conn.execute(
                "SELECT deribit_ts.plan_tasks('candles', %s, tstzrange(%s, %s), interval '25000 minutes', 100000)",
                (name, start, end),
            )
        earlier = conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state = 'pending'").fetchone()[0]
    since, until = datetime(2024, 2, 3, tzinfo=UTC), datetime(2024, 2, 5, tzinfo=UTC)
    args = ["candles", "--instrument", "BTC-PERPETUAL", "--since", since.isoformat(), "--until", until.isoformat()]
    summary = backfill(new_db, sim.url, *args)
    assert summary["status"] == "ok"
    assert summary["datasets"]["candles"]["rows_fetched"] == 2 * 1440, summary
    assert stored_candles(new_db, "BTC-PERPETUAL") == true_candles(sim, "BTC-PERPETUAL", since, until)
    assert stored_candles(new_db, "ETH-PERPETUAL") == []
    assert summary["left_for_resume"] >= earlier, summary
    said = run_cli("backfill", *args, "--quiet", "--dsn", new_db, "--api-url", sim.url, env=NO_LIMITER)
    assert said.returncode == 0, said.stderr
    assert f"{summary['left_for_resume']:,} pending tasks of earlier runs left for `deribit-ts backfill resume`" in (
        said.stderr
    )

    resumed = backfill(new_db, sim.url, "resume")
    assert resumed["status"] == "ok" and resumed["left_for_resume"] == 0, resumed
    for name in ("BTC-PERPETUAL", "ETH-PERPETUAL"):
        assert stored_candles(new_db, name) == true_candles(sim, name, start, end), name
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state <> 'done'").fetchone() == (0,)


@pytest.mark.parametrize("dataset", ["index", "delivery"])
def test_a_whole_task_killed_after_its_commit_is_finished_by_the_next_run(sim, new_db, dataset):
    """A task fetched whole (index, delivery) commits its rows and its cursor, at its end, before it is closed. A
    process killed (or a database restarted) between the two leaves it running with nothing left to fetch: the
    next run that took it over recorded an empty range as coverage, which the database refuses, so every resume,
    and every collector that took the lead, died on it."""
    first = backfill(new_db, sim.url, dataset, "--since", "2024-02-20")
    assert first["status"] == "ok", first
    with psycopg.connect(new_db, autocommit=True) as conn:
        before = conn.execute("SELECT count(*), sum(rows) FROM deribit_ts.coverage WHERE dataset = %s", (dataset,))
        coverage = before.fetchone()
        # as a kill between the window's commit and the task's close leaves it, its lease since expired
        stranded = conn.execute(
            """UPDATE deribit_ts.tasks SET state = 'running', lease_owner = 'a-dead-host/1/w0',
                      lease_expires = now() - interval '1 minute'
                WHERE dataset = %s AND cursor = range_end RETURNING task_id""",
            (dataset,),
        ).fetchall()
    assert stranded
    resumed = backfill(new_db, sim.url, "resume")
    assert resumed["status"] == "ok", resumed
    with psycopg.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM deribit_ts.tasks WHERE state <> 'done'").fetchone() == (0,)
        again = conn.execute("SELECT count(*), sum(rows) FROM deribit_ts.coverage WHERE dataset = %s", (dataset,))
        assert again.fetchone() == coverage
