"""The embedded cluster against a real PostgreSQL + TimescaleDB, in a temporary home.

The binaries come from the normal private prefix (installed once by scripts/install-timescaledb.sh, or by the
first `up` here), so nothing is downloaded twice; the data directory, port and password are the test's own.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import run_cli

from deribit_ts.config import default_home
from deribit_ts.db.embedded import NOT_SET_UP, Cluster
from deribit_ts.errors import UserError

UNREACHABLE = "postgresql://127.0.0.1:1/x"


def _prefix() -> Path:
    return Path(os.environ.get("DERIBIT_TS_PG_PREFIX") or default_home() / "postgres")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded-home")


@pytest.fixture(scope="module")
def cluster(home: Path) -> Iterator[Cluster]:
    cluster = Cluster(home, prefix=_prefix())
    cluster.up(quiet=True)
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def stopped(cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster, stopped for the test and running again afterwards."""
    cluster.down()
    try:
        yield cluster
    finally:
        cluster.up(quiet=True)


def test_not_set_up(tmp_path: Path):
    cluster = Cluster(tmp_path, prefix=_prefix())
    assert cluster.url_if_known() is None
    assert not cluster.is_running()
    with pytest.raises(UserError, match="not set up; run `deribit-ts db up`"):
        cluster.url()
    assert str(NOT_SET_UP) in run_cli("db", "url", env={"DERIBIT_TS_HOME": str(tmp_path)}).stderr


def test_up_creates_a_password_protected_cluster(cluster: Cluster, home: Path):
    assert cluster.is_running()
    url = cluster.url()
    assert url.startswith("postgresql://deribit_ts:") and url.endswith("/deribit")
    assert stat.S_IMODE((home / "cluster.password").stat().st_mode) == 0o600
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        hba = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
        listen = conn.execute("SHOW listen_addresses").fetchone()
    assert {row[0] for row in hba} == {"scram-sha-256"}
    assert listen == ("127.0.0.1",)
    wrong = url.replace(url.split(":")[2].split("@")[0], "wrong-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_up_again_is_a_no_op(cluster: Cluster):
    before = cluster.status()
    started = time.monotonic()
    cluster.up(quiet=True)
    assert time.monotonic() - started < 1.0
    assert cluster.status()["pid"] == before["pid"]


def test_status_reports_versions_and_edition(cluster: Cluster):
    info = cluster.status()
    assert info["running"] and info["pid"] > 0
    assert info["postgres_version"].startswith("17.")
    assert info["timescaledb_version"]
    assert info["edition"] == "apache"
    assert info["data_size_bytes"] > 1_000_000


def test_down_stops_and_is_idempotent(stopped: Cluster):
    assert not stopped.is_running()
    assert stopped.status()["running"] is False
    stopped.down()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(stopped.url(), connect_timeout=2).close()


def test_a_stale_pid_file_is_removed_with_a_message(stopped: Cluster, capsys: pytest.CaptureFixture[str]):
    lock_file = stopped.data_dir / "postmaster.pid"
    # The test process itself: a live PID that is not a PostgreSQL server (as after a container restart).
    for stale_pid in (2**22 + 1, os.getpid()):
        lock_file.write_text(f"{stale_pid}\n{stopped.data_dir}\n")
        assert not stopped.is_running()
        stopped.up()
        assert f"removed a stale {lock_file} (PID {stale_pid}" in capsys.readouterr().err
        assert stopped.is_running()
        stopped.down()


def test_remembered_port_taken_by_someone_else(stopped: Cluster):
    port = json.loads(stopped.state_path.read_text())["port"]
    with socket.socket() as squatter:
        # SO_REUSEADDR: the server just closed connections on this port, which may linger in TIME_WAIT.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 .* is in use by another program"):
            stopped.up(quiet=True)
    assert not stopped.is_running()


def test_data_dir_of_another_major_version(stopped: Cluster):
    version_file = stopped.data_dir / "PG_VERSION"
    original = version_file.read_text()
    version_file.write_text("15\n")
    try:
        expected = "created by PostgreSQL 15, but the available server is PostgreSQL 17 "
        with pytest.raises(UserError, match=expected):
            stopped.up(quiet=True)
    finally:
        version_file.write_text(original)


def test_cli_status_and_psql_on_the_embedded_cluster(cluster: Cluster, home: Path):
    env = {"DERIBIT_TS_HOME": str(home), "DERIBIT_TS_DSN": ""}
    status = run_cli("db", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["server"], report["running"], report["edition"]) == ("embedded", True, "apache")
    assert "****" in report["dsn"]
    assert set(report["migrations"]) >= {"applied", "pending", "skipped", "latest"}
    psql = run_cli("db", "psql", "--", "-Atc", "SELECT 6 * 7", env=env)
    assert (psql.returncode, psql.stdout.strip()) == (0, "42")


def test_cli_status_with_an_unreachable_dsn_fails_in_one_line(tmp_path: Path):
    result = run_cli("db", "status", env={"DERIBIT_TS_DSN": UNREACHABLE, "DERIBIT_TS_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot connect" in result.stderr and "Traceback" not in result.stderr


def test_cli_up_with_a_dsn_manages_only_the_embedded_cluster(tmp_path: Path):
    result = run_cli("db", "up", "--dsn", UNREACHABLE, env={"DERIBIT_TS_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "manages only the embedded cluster" in result.stderr
    assert not (tmp_path / "cluster").exists()
