"""What a user reads after a backfill: `runs` (per run, and per task with --run) and `coverage`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from helpers import run_cli

from deribit_ts.sim import SimConfig, run_in_thread

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}


@pytest.fixture(scope="module")
def loaded(db):
    """One small backfill of BTC-PERPETUAL candles up to the simulator's now: the last 30 minutes are unsettled."""
    dsn = db
    with run_in_thread(SimConfig(now=NOW, rate_limit="off")) as sim:
        result = run_cli(
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2024-02-29",
            "--json",
            "--dsn",
            dsn,
            "--api-url",
            sim.url,
            env=NO_LIMITER,
        )
        assert result.returncode == 0, result.stderr
        return dsn, json.loads(result.stdout)


def test_runs_shows_each_task_of_a_run(loaded):
    dsn, summary = loaded
    result = run_cli("runs", "--run", str(summary["run_id"]), "--json", "--dsn", dsn)
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)
    assert tasks and {t["key"] for t in tasks} == {"BTC-PERPETUAL"}
    assert sum(t["rows_fetched"] for t in tasks) == summary["datasets"]["candles"]["rows_fetched"]
    assert all(t["state"] == "done" and t["requests"] >= 1 and t["error"] is None for t in tasks)
    text = run_cli("runs", "--run", str(summary["run_id"]), "--dsn", dsn).stdout
    assert text.count("\n") == len(tasks) and "BTC-PERPETUAL" in text
    assert "no such run" in run_cli("runs", "--run", "999999", "--dsn", dsn).stdout


def test_coverage_tells_complete_from_settled(loaded):
    dsn, _ = loaded
    with psycopg.connect(dsn) as conn:
        complete, unsettled = conn.execute(
            "SELECT complete, unsettled::text FROM deribit.coverage WHERE key = 'BTC-PERPETUAL'"
        ).fetchone()
    # Fetched up to the last closed minute (12:29), final only up to 30 minutes before the exchange's clock.
    assert complete and unsettled == '{["2024-03-01 12:00:00+00","2024-03-01 12:30:00+00")}'
    text = run_cli("coverage", "--dsn", dsn).stdout
    assert "complete (0:30:00 still settling" in text
    assert run_cli("coverage", "--incomplete", "--dsn", dsn).stdout.strip() == "every backfilled range is complete"
