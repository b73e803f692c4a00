"""The embedded cluster against a real PostgreSQL + TimescaleDB, in a temporary home.

The binaries come from the normal private prefix (installed once by scripts/install-timescaledb.sh, or by the
first `up` here), so nothing is downloaded twice; the data directory, port and password are the test's own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import cli_command, run_cli

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
    assert url.startswith("postgresql://deribit_owner:") and url.endswith("/deribit")
    assert stat.S_IMODE((home / "cluster.password").stat().st_mode) == 0o600
    with psycopg.connect(cluster.superuser_url()) as conn:  # (pg_hba_file_rules is the superuser's to read)
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
    env = {"DERIBIT_TS_HOME": str(home), "DERIBIT_TS_DSN": None}
    status = run_cli("db", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["server"], report["running"], report["edition"]) == ("embedded", True, "apache")
    assert "****" in report["dsn"]
    assert set(report["migrations"]) >= {"applied", "pending", "skipped", "latest"}
    psql = run_cli("db", "psql", "--", "-Atc", "SELECT 6 * 7", env=env)
    assert (psql.returncode, psql.stdout.strip()) == (0, "42")


@pytest.mark.slow
def test_cli_reader_on_the_embedded_cluster(cluster: Cluster, home: Path):
    env = {"DERIBIT_TS_HOME": str(home), "DERIBIT_TS_DSN": None}
    up = run_cli("db", "up", env=env)  # the schema, so that there is something to read
    assert up.returncode == 0, up.stderr
    made = run_cli("db", "reader", "analyst", "--json", env=env)
    assert made.returncode == 0, made.stderr
    dsn = json.loads(made.stdout)["dsn"]
    assert dsn.startswith("postgresql://analyst:") and dsn.endswith(
        "@127.0.0.1:" + str(cluster.status()["port"]) + "/deribit"
    )
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM deribit.instruments").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM deribit_ts.tasks")


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


# ------------------------------------------------ a first `db up` killed part-way


def _initdb_processes(home: Path) -> list[int]:
    """PIDs of initdb (or the bootstrap postgres it runs) working under ``home``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if str(home) in text and ("initdb" in text or "--boot" in text or "--single" in text):
            found.append(int(proc.name))
    return found


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _kill_first_up(home: Path, when) -> None:
    """Start a first `db up` in ``home`` and kill -9 it when ``when(home)`` holds (or after a delay)."""
    env = {key: value for key, value in os.environ.items() if key != "DERIBIT_TS_DSN"}  # (blank is refused)
    env.update({"DERIBIT_TS_HOME": str(home), "DERIBIT_TS_PG_PREFIX": str(_prefix())})
    proc = subprocess.Popen(cli_command("db", "up"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if isinstance(when, float):
            time.sleep(when)
        else:
            _wait_for(lambda: when(home) or proc.poll() is not None, 30)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def fresh_home() -> Iterator[Path]:
    """A home outside pytest's temporary root: every pytest session that starts (other checkouts' too) chmods
    /tmp/pytest-of-USER to 0700, which voids the search ACL the server's user needs there when we run as root,
    and a first `db up` whose initdb runs meanwhile fails with "Permission denied"."""
    parent = Path(tempfile.mkdtemp(prefix="deribit-ts-test-"))
    try:
        yield parent / "home"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


KILL_POINTS = {
    "0.3s": 0.3,
    "1.0s": 1.0,
    "1.5s": 1.5,
    "2.0s": 2.0,
    "initdb-running": lambda home: (home / "cluster.initdb" / "data" / "PG_VERSION").is_file(),
    "initdb-done": lambda home: (home / "cluster" / "PG_VERSION").is_file(),
    "server-started": lambda home: (home / "cluster" / "postmaster.pid").is_file(),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_first_up_killed_part_way_leaves_a_home_the_next_up_completes(point: str, fresh_home: Path):
    home = fresh_home
    _kill_first_up(home, KILL_POINTS[point])
    # No orphan: the initdb of the killed `up` dies with it.
    assert _wait_for(lambda: not _initdb_processes(home), 5), _initdb_processes(home)
    assert not (home / "cluster.password.initdb").exists()
    if (home / "cluster").exists():  # all or nothing: a data directory is a complete one
        assert "include_if_exists = 'deribit_ts.conf'" in (home / "cluster" / "postgresql.conf").read_text()
    env = {"DERIBIT_TS_HOME": str(home), "DERIBIT_TS_PG_PREFIX": str(_prefix()), "DERIBIT_TS_DSN": None}
    try:
        result = run_cli("db", "up", env=env)
        assert result.returncode == 0, result.stderr
        cluster = Cluster(home, prefix=_prefix())
        with psycopg.connect(cluster.url(), connect_timeout=5) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (1,)
        # No copy of the superuser password anywhere but cluster.password.
        leftovers = {p.name for p in home.iterdir()} - {
            "cluster",
            "cluster.json",
            "cluster.lock",
            "cluster.log",
            "cluster.password",
            "owner.password",
        }
        assert not leftovers
    finally:
        run_cli("db", "down", env=env)


def test_a_cluster_left_half_initialised_by_an_earlier_version_is_created_again(fresh_home: Path):
    """The reported state: PG_VERSION exists, the include line never got written, no port remembered."""
    home = fresh_home
    cluster = Cluster(home, prefix=_prefix())
    cluster.up(quiet=True)
    cluster.down()
    conf = cluster.data_dir / "postgresql.conf"
    conf.write_text(conf.read_text().replace("include_if_exists = 'deribit_ts.conf'", ""))
    state = json.loads(cluster.state_path.read_text())
    state.pop("port"), state.pop("ready")
    cluster.state_path.write_text(json.dumps(state))
    (home / "cluster.password.initdb").write_text("secret\n")
    try:
        cluster.up(quiet=True)
        assert cluster.is_running()
        assert not (home / "cluster.password.initdb").exists()
        assert [p.name for p in home.glob("cluster.incomplete-*")]  # moved aside, never deleted
    finally:
        cluster.down()


def test_an_empty_owner_password_file_is_replaced_and_the_role_renewed(fresh_home: Path):
    """A first `up` killed while an earlier version wrote owner.password left it empty: the next `up` must not take
    the empty string for the password (libpq sends none), but make a new one and set it on the role."""
    env = {"DERIBIT_TS_HOME": str(fresh_home), "DERIBIT_TS_PG_PREFIX": str(_prefix()), "DERIBIT_TS_DSN": None}
    try:
        assert run_cli("db", "up", env=env).returncode == 0
        assert run_cli("db", "down", env=env).returncode == 0
        (fresh_home / "owner.password").write_text("")
        (fresh_home / ".owner.password.1.tmp").write_text("half")  # a scratch copy a killed writer left
        state = json.loads((fresh_home / "cluster.json").read_text())
        state.pop("ready", None)  # as after a first `up` killed before it finished
        (fresh_home / "cluster.json").write_text(json.dumps(state))
        result = run_cli("db", "up", env=env)
        assert result.returncode == 0, result.stderr
        assert (fresh_home / "owner.password").read_text().strip()
        assert not list(fresh_home.glob(".*.tmp"))
        with psycopg.connect(Cluster(fresh_home, prefix=_prefix()).url(), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("deribit_owner",)
    finally:
        run_cli("db", "down", env=env)
