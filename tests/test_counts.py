"""Every count a user sees agrees with count(*): coverage rows after the settling tail is fetched
again, the progress bar's keys against the summary's coverage keys, a run's requests against its dataset lines
and the simulator's own count, also for a run killed mid-way."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import backfill, cli_command, run_cli

from deribit_ts.ingest.backfill import BackfillRequest, run_backfill
from deribit_ts.ingest.progress import Reporter, RichReporter
from deribit_ts.resources import migrations_dir
from deribit_ts.sim import SimConfig, run_in_thread
from deribit_ts.timeutil import to_ms

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}

# Each stored table and how its rows are keyed in coverage.
STORED = """
SELECT 'candles', i.instrument_name, count(*) FROM deribit.candles_1m c
  JOIN deribit.instruments i ON i.id = c.instrument_id GROUP BY 2
UNION ALL
SELECT 'funding', i.instrument_name, count(*) FROM deribit.funding_rate_history f
  JOIN deribit.instruments i ON i.id = f.instrument_id GROUP BY 2
UNION ALL
SELECT 'index', index_name, count(*) FROM deribit.index_price_history GROUP BY 2
UNION ALL
SELECT 'dvol', currency, count(*) FROM deribit.volatility_index GROUP BY 2
UNION ALL
SELECT 'delivery', index_name, count(*) FROM deribit.delivery_prices GROUP BY 2
UNION ALL
SELECT 'trades', instrument_name, count(*) FROM deribit.trades GROUP BY 2
"""


def coverage_rows(dsn: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(dsn) as conn:
        return {(d, k): rows for d, k, rows in conn.execute("SELECT dataset, key, rows FROM deribit.coverage")}


def stored_rows(dsn: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(dsn) as conn:
        return {(d, k): n for d, k, n in conn.execute(STORED)}


@pytest.mark.slow
def test_coverage_rows_equal_count_after_reruns_over_the_unsettled_tail(new_db):
    args = ("all", "--currency", "BTC", "--since", (NOW - timedelta(hours=6)).isoformat())
    # Options: two strikes per expiry (every expiry, a few dozen options: tasks of each dataset, not hundreds).
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", strikes_per_expiry=2)) as live:
        summaries = [backfill(new_db, live.url, *args)]
        for minutes in (7, 45):  # each run fetches the previous run's last 30 minutes again
            live.set_now(to_ms(NOW + timedelta(minutes=minutes)))
            summaries.append(backfill(new_db, live.url, *args))
    with psycopg.connect(new_db) as conn:
        overlapping = conn.execute(
            """SELECT count(*) FROM deribit_ts.coverage a JOIN deribit_ts.coverage b
                 ON a.dataset = b.dataset AND a.key = b.key AND a.coverage_id < b.coverage_id
                AND a.fetched && b.fetched"""
        ).fetchone()[0]
    assert summaries[-1]["datasets"]["candles"]["rows_fetched"] > 0
    assert overlapping == 0
    stored = stored_rows(new_db)
    assert {"candles", "funding", "index", "dvol", "delivery"} <= {d for d, _ in stored}
    # Keys with nothing stored (an option that never traded in the window) have no group in `stored`.
    assert {key: rows for key, rows in coverage_rows(new_db).items() if rows} == stored
    # The summary's coverage rows are the same count.
    for dataset, cov in summaries[-1]["coverage"].items():
        assert cov["rows"] == sum(n for (d, _), n in stored.items() if d == dataset), dataset


def test_migration_0020_repairs_overlapping_records(new_db):
    """Records written before record_coverage existed overlap; the migration's repair leaves the stored count."""
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", option_strike_density=0.25)) as live:
        backfill(new_db, live.url, "candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-03-01T10:00")
    repair = (migrations_dir() / "0020_coverage_without_overlaps.sql").read_text()
    with psycopg.connect(new_db, autocommit=True) as conn:
        # Overlap as the old task_progress left it: the settling tail recorded a second time, with its rows.
        conn.execute(
            """INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until)
                        SELECT 'candles', 'BTC-PERPETUAL', tstzrange(%s, %s), 30, %s""",
            (NOW - timedelta(minutes=30), NOW.replace(second=0), NOW),
        )
        assert (
            coverage_rows(new_db)[("candles", "BTC-PERPETUAL")]
            == stored_rows(new_db)[("candles", "BTC-PERPETUAL")] + 30
        )
        conn.execute(repair)
    assert coverage_rows(new_db) == stored_rows(new_db)


class Recorder(Reporter):
    def __init__(self) -> None:
        self.planned_keys: dict[str, dict[str, int]] = {}

    def planned(self, dataset: str, open_tasks: dict[str, int]) -> None:
        self.planned_keys[dataset] = open_tasks


def test_progress_keys_are_the_summarys_coverage_keys(new_db):
    """A second run where some keys have nothing left to do: the bar counts them as done, not as absent."""
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", option_strike_density=0.25)) as live:
        backfill(new_db, live.url, "candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-03-01")
        live.set_now(to_ms(NOW + timedelta(minutes=5)))
        recorder = Recorder()
        request = BackfillRequest(
            datasets=["candles"],
            instruments=["BTC-PERPETUAL", "BTC-8MAR24"],
            kinds=["perpetual", "future"],
            since=datetime(2024, 3, 1, tzinfo=UTC),
            workers=2,
        )
        os.environ.update(NO_LIMITER)
        try:
            summary = asyncio.run(run_backfill(new_db, live.url, request, recorder, "test"))
        finally:
            os.environ.pop("DERIBIT_TS_RATE_LIMIT_SCALE")
    keys = recorder.planned_keys["candles"]
    assert len(keys) == summary["coverage"]["candles"]["keys"] == 2
    bar = RichReporter()
    bar.planned("candles", keys)
    assert bar._keys("candles") == f"{sum(1 for n in keys.values() if n == 0)}/2"


def test_run_requests_agree_with_their_tasks_and_the_exchange(new_db):
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", option_strike_density=0.25)) as live:
        live.reset()
        summary = backfill(new_db, live.url, "candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-02-26")
        served = live.stats()
    run = json.loads(run_cli("runs", "--last", "1", "--json", "--dsn", new_db).stdout)[0]
    datasets = run["datasets"]["candles"]
    assert datasets["requests"] == served["requests_by_method"]["get_tradingview_chart_data"] > 1
    assert run["requests"] == summary["exchange"]["requests"] == served["requests"]
    text = run_cli("runs", "--last", "1", "--dsn", new_db).stdout
    assert f"requests {served['requests']}" in text.splitlines()[0]


@pytest.mark.slow
def test_a_killed_runs_requests_are_not_zero(new_db):
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", latency_ms=40)) as slow:
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
            "2",
            "--dsn",
            new_db,
            "--api-url",
            slow.url,
        ]
        victim = subprocess.Popen(cli_command(*args), env={**os.environ, **NO_LIMITER}, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and victim.poll() is None:
            with psycopg.connect(new_db) as conn:
                if conn.execute("SELECT count(*) FROM deribit_ts.coverage").fetchone()[0] >= 3:
                    break
            time.sleep(0.05)
        while time.monotonic() < deadline and victim.poll() is None:  # until the first traffic log
            with psycopg.connect(new_db) as conn:
                logged = """SELECT (SELECT max(requests) FROM deribit_ts.runs) > 0
                                   AND (SELECT sum(requests) FROM deribit_ts.run_tasks) > 0"""
                if conn.execute(logged).fetchone()[0]:
                    break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    run = json.loads(run_cli("runs", "--last", "1", "--json", "--dsn", new_db).stdout)[0]
    assert run["status"] == "running"  # nobody has looked since the kill
    assert run["requests"] >= run["datasets"]["candles"]["requests"] > 0
