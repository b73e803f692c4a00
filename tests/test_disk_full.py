"""Disk full while writing: one line saying so, a non-zero exit, nothing half-written; once space is freed the
same command resumes and completes exactly. For real: the candles' chunks live in a tablespace on a small tmpfs
mounted by the test (root only; skipped where mounting is not allowed)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from helpers import run_cli

from deribit_ts.db.connect import disk_full
from deribit_ts.sim import SimConfig, run_in_thread

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


def test_disk_full_errors_become_one_actionable_line():
    assert disk_full(psycopg.errors.DiskFull("could not extend file"), after="x") is not None
    lost = psycopg.OperationalError("server closed the connection: could not write to file: No space left on device")
    line = str(disk_full(lost, after="every committed window is kept"))
    assert "disk is full" in line and "re-run the same command" in line and "\n" not in line
    assert disk_full(psycopg.OperationalError("server closed the connection unexpectedly"), after="x") is None


@pytest.fixture
def small_disk():
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    # Not under pytest's tmp_path: the server's own user must reach it (tmp_path's parents are private to root).
    mount = Path(tempfile.mkdtemp(prefix="deribit-ts-small-disk-", dir="/tmp"))
    mount.chmod(0o755)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


@pytest.mark.slow
def test_a_full_disk_stops_the_backfill_in_one_line_and_the_rerun_completes(new_db, small_disk):
    with psycopg.connect(new_db, autocommit=True) as conn:
        data = conn.execute("SHOW data_directory").fetchone()[0]
        owner = os.stat(data).st_uid
        os.chown(small_disk, owner, os.stat(data).st_gid)
        space = f"small_{os.getpid()}"
        conn.execute(f"CREATE TABLESPACE {space} LOCATION '{small_disk}'")
        conn.execute(f"SELECT attach_tablespace('{space}', 'deribit.candles_1m')")
    args = ("candles", "--instrument", "BTC-PERPETUAL", "--since", "2023-03-01", "--until", "2024-02-20")
    env = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
    try:
        with run_in_thread(SimConfig(now=NOW, rate_limit="off")) as sim:
            full = run_cli("backfill", *args, "--quiet", "--dsn", new_db, "--api-url", sim.url, env=env, timeout=600)
            lines = [line for line in full.stderr.splitlines() if line.strip()]
            assert full.returncode != 0 and len(lines) == 1, full.stderr
            assert "disk is full" in lines[0] and "lost the database connection" not in lines[0], lines
            with psycopg.connect(new_db) as conn:
                stored = conn.execute(
                    "SELECT count(*) FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id "
                    "WHERE i.instrument_name = 'BTC-PERPETUAL'"
                ).fetchone()[0]
                covered = conn.execute(
                    "SELECT coalesce(sum(rows), 0) FROM deribit_ts.coverage WHERE dataset = 'candles'"
                ).fetchone()[0]
            assert 0 < stored == covered, (stored, covered)  # every window whole, or not at all

            subprocess.run(["mount", "-o", "remount,size=512m", str(small_disk)], check=True)  # space freed
            again = run_cli("backfill", *args, "--quiet", "--dsn", new_db, "--api-url", sim.url, env=env, timeout=600)
            assert again.returncode == 0, again.stderr
            with psycopg.connect(new_db) as conn:
                rows, distinct = conn.execute(
                    "SELECT count(*), count(DISTINCT ts) FROM deribit.ohlcv_1m WHERE instrument_name = 'BTC-PERPETUAL'"
                ).fetchone()
                truth = len(sim.market.candles("BTC-PERPETUAL", 1677628800000, 1708387140000)["ticks"])
            assert rows == distinct == truth
    finally:
        with psycopg.connect(new_db, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS deribit.candles_1m CASCADE")  # its chunks live in the tablespace
            conn.execute(f"DROP TABLESPACE IF EXISTS {space}")
