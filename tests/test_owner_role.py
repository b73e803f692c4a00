"""The embedded cluster's owner role: everything deribit-ts runs connects as a role that is no superuser.

Clusters of their own, in homes outside pytest's temporary root (see tests/test_embedded.py): `db up`, then every
command without --dsn, so each of them connects as the owner `db url` names.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import cli_command, run_cli
from psycopg.conninfo import make_conninfo
from sim_fixtures import sim_config

from deribit_ts.config import default_home
from deribit_ts.db.embedded import OWNER, SUPERUSER, Cluster
from deribit_ts.db.migrate import apply_all
from deribit_ts.db.queries import query
from deribit_ts.db.roles import ensure_reader
from deribit_ts.sim import run_in_thread


def _prefix() -> Path:
    return Path(os.environ.get("DERIBIT_TS_PG_PREFIX") or default_home() / "postgres")


def _env(home: Path, **more: str | None) -> dict[str, str | None]:
    return {
        "DERIBIT_TS_HOME": str(home),
        "DERIBIT_TS_PG_PREFIX": str(_prefix()),
        "DERIBIT_TS_DSN": None,
        "DERIBIT_TS_RATE_LIMIT_SCALE": "off",
        **more,
    }


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A cluster set up by `db up`, stopped after the module."""
    parent = Path(tempfile.mkdtemp(prefix="deribit-ts-owner-"))
    home = parent / "home"
    try:
        up = run_cli("db", "up", env=_env(home))
        assert up.returncode == 0, up.stderr
        yield home
    finally:
        run_cli("db", "down", env=_env(home))
        shutil.rmtree(parent, ignore_errors=True)


def _owner_dsn(home: Path) -> str:
    result = run_cli("db", "url", env=_env(home))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _still_the_superusers(dsn: str) -> list[tuple]:
    """What of deribit-ts the superuser still owns (TimescaleDB's own objects aside), chunks included."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(query("owner", "handover_objects"), {"superuser": SUPERUSER}).fetchall()
        chunks = conn.execute(
            """SELECT c.oid::regclass::text FROM _timescaledb_catalog.chunk k
                 JOIN pg_class c ON c.relname = k.table_name
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = k.schema_name
                WHERE pg_get_userbyid(c.relowner) = %s""",
            (SUPERUSER,),
        ).fetchall()
    return found + chunks


def test_db_url_is_the_owner_and_the_owner_is_no_superuser(home: Path):
    dsn = _owner_dsn(home)
    assert dsn.startswith(f"postgresql://{OWNER}:") and dsn.endswith("/deribit")
    assert stat.S_IMODE((home / "owner.password").stat().st_mode) == 0o600
    with psycopg.connect(dsn, autocommit=True) as conn:
        role = conn.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        assert role == (OWNER, False, False, False, False)
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'deribit'").fetchone()
        assert owner == (OWNER,)
        # what only a superuser (or pg_execute_server_program / pg_read_server_files) may: shell and server files
        for refused in (
            "COPY (SELECT 1) TO PROGRAM 'id'",
            "CREATE TEMP TABLE t (line text); COPY t FROM PROGRAM 'id'",
            "SELECT pg_read_file('/etc/passwd')",
            "CREATE ROLE intruder SUPERUSER",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(refused)
    assert _still_the_superusers(dsn) == []


@pytest.mark.slow
def test_the_full_flow_runs_as_the_owner(home: Path, tmp_path: Path):
    """backfill, refresh, report, export, collect (with the takeover of a leader), backup and restore: all as the
    owner, with no --dsn."""
    env = _env(home)
    with run_in_thread(sim_config()) as sim:
        env["DERIBIT_TS_API_URL"] = sim.url
        for argv in (
            ("backfill", "all", "--currency", "BTC", "--since", "2024-02-29T12:00", "--until", "2024-03-01"),
            ("refresh",),
            ("report", "coverage", "--json"),
            ("export", "ohlcv_1h", "--format", "csv", "--out", str(tmp_path / "h.csv")),
        ):
            result = run_cli(*argv, env=env, timeout=300)
            assert result.returncode == 0, (argv, result.stderr)
        assert len((tmp_path / "h.csv").read_text().splitlines()) > 1
        dsn = _owner_dsn(home)
        _collect_and_take_over(dsn, env)
    backup = run_cli("backup", "--to", str(tmp_path / "backups"), "--json", env=env)
    assert backup.returncode == 0, backup.stderr
    dump = json.loads(backup.stdout)["dump"]
    # the owner creates the empty database (CREATEDB); restoring is the superuser's (TimescaleDB's procedure),
    # refused to the owner in one line with nothing written, and what it restores goes to the database's owner
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE restored")
    refused = run_cli("restore", dump, "--dsn", make_conninfo(dsn, dbname="restored"), env=env)
    assert refused.returncode != 0 and "restoring needs a superuser" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    superuser = run_cli("db", "url", "--superuser", env=env).stdout.strip()
    assert superuser.startswith(f"postgresql://{SUPERUSER}:")
    restored = run_cli("restore", dump, "--dsn", make_conninfo(superuser, dbname="restored"), env=env, timeout=300)
    assert restored.returncode == 0, restored.stderr
    target = make_conninfo(dsn, dbname="restored")
    assert _still_the_superusers(target) == []
    with psycopg.connect(target) as conn:
        candles = conn.execute("SELECT count(*) FROM deribit.ohlcv_1m").fetchone()[0]
        conn.execute("DELETE FROM deribit_ts.tasks")  # the owner may write what it owns
    assert candles > 0
    assert _still_the_superusers(dsn) == []


def _collect_and_take_over(dsn: str, env: dict[str, str | None]) -> None:
    """A collector leads as the owner; another session of the owner ends its lock session, as a standby does
    with a frozen leader (pg_terminate_backend: no superuser needed for a session of one's own role)."""
    full_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    proc = subprocess.Popen(
        cli_command("collect", "--currency", "BTC", "--kinds", "perpetual"),
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                leading = conn.execute("SELECT count(*) FROM deribit_ts.collector_status WHERE holds_lock").fetchone()
                if leading == (1,):
                    break
                time.sleep(0.5)
            assert leading == (1,), "the collector did not lead within 60 s"
            assert conn.execute("SELECT deribit_ts.collector_end_stale_leader()").fetchone() == (1,)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "permission denied" not in err, err


@pytest.fixture
def old_home() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="deribit-ts-owner-old-"))
    try:
        yield parent / "home"
    finally:
        run_cli("db", "down", env=_env(parent / "home"))
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_db_up_hands_an_earlier_versions_cluster_over_to_the_owner(old_home: Path):
    """A cluster of a version without the owner role: everything made and run as the superuser, a reader with
    default privileges of the superuser's. `db up` hands it all over; then the owner writes into the hypertables
    the superuser made, and what the owner creates later is readable by the reader."""
    home = old_home
    cluster = Cluster(home, prefix=_prefix())
    cluster.up(quiet=True)
    superuser = cluster.superuser_url()
    # as an earlier version left it: no owner role, the database and everything in it the superuser's
    with psycopg.connect(make_conninfo(superuser, dbname="postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE deribit")
        conn.execute("DROP ROLE deribit_owner")
        conn.execute("CREATE DATABASE deribit")
    with psycopg.connect(superuser) as conn:  # (as an earlier `db up` did, before any migration)
        conn.execute("CREATE EXTENSION timescaledb")
    (home / "owner.password").unlink()
    state = json.loads(cluster.state_path.read_text())
    del state["owner"]
    cluster.state_path.write_text(json.dumps(state))
    apply_all(superuser)
    with run_in_thread(sim_config()) as sim:
        since = ("--since", "2024-02-29T22:00", "--until", "2024-03-01")
        early = run_cli(
            "backfill", "candles", "--instrument", "BTC-PERPETUAL", *since, "--dsn", superuser, "--api-url", sim.url
        )
        assert early.returncode == 0, early.stderr
        reader = ensure_reader(superuser, "analyst")
        assert _still_the_superusers(superuser) != []

        up = run_cli("db", "up", env=_env(home))
        assert up.returncode == 0, up.stderr
        assert "now belong to 'deribit_owner'" in up.stderr
        dsn = _owner_dsn(home)
        assert dsn.startswith(f"postgresql://{OWNER}:")
        assert _still_the_superusers(dsn) == []
        # the owner writes into the chunks the superuser made, and more
        later = run_cli(
            "backfill", "candles", "--instrument", "BTC-PERPETUAL", "--since", "2024-02-29T20:00", "--until",
            "2024-03-01", env={**_env(home), "DERIBIT_TS_API_URL": sim.url},
        )  # fmt: skip
        assert later.returncode == 0, later.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM deribit.ohlcv_1m").fetchone() == (240,)
        conn.execute("CREATE VIEW deribit.made_later AS SELECT 1 AS one")
    with psycopg.connect(reader.dsn) as conn:
        assert conn.execute("SELECT one FROM deribit.made_later").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM deribit.ohlcv_1m").fetchone() == (240,)
