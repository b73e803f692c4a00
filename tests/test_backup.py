"""`deribit-ts backup` / `restore` against a real TimescaleDB, with data backfilled from the simulator."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from helpers import create_database, drop_database, run_cli
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deribit_ts.config import default_home
from deribit_ts.db import backup
from deribit_ts.errors import UserError
from deribit_ts.sim import SimConfig, run_in_thread

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def source(db: str) -> str:
    """A migrated database holding a little of every dataset, backfilled from the simulator."""
    # Options: two strikes per expiry (every expiry, a few dozen options: a task or two each, not hundreds).
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", strikes_per_expiry=2)) as sim:
        result = run_cli(
            "backfill",
            "all",
            "--currency",
            "BTC",
            "--since",
            "2024-02-29",
            "--until",
            "2024-03-01",
            "--dsn",
            db,
            "--api-url",
            sim.url,
            env={"DERIBIT_TS_RATE_LIMIT_SCALE": "off"},
        )
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture
def target(pg_server: str):
    """A new, empty database (no extension) to restore into."""
    name = create_database(pg_server, "restore")
    try:
        yield make_conninfo(pg_server, dbname=name)
    finally:
        drop_database(pg_server, name)


@pytest.fixture(scope="module")
def made(source: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One backup of ``source`` for the tests that only read it or tamper with a copy."""
    return run_backup(source, tmp_path_factory.mktemp("backups"))


def copy_of(made: dict, to: Path) -> dict:
    dump, manifest = Path(made["dump"]), Path(made["manifest"])
    shutil.copy(dump, to / dump.name)
    shutil.copy(manifest, to / manifest.name)
    return {"dump": str(to / dump.name), "manifest": str(to / manifest.name)}


def independent_fingerprint(dsn: str) -> dict[str, tuple[int, str]]:
    """Per table of our schemas: count(*) and the md5 of all rows in order (not the manifest's method)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        tables = conn.execute("""SELECT schemaname, tablename FROM pg_tables
                                 WHERE schemaname IN ('deribit', 'deribit_ts') ORDER BY 1, 2""").fetchall()
        result = {}
        for schema, table in tables:
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
            ).format(sql.Identifier(schema, table))
            result[f"{schema}.{table}"] = conn.execute(query).fetchone()
    return result


def password_of(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("password") or "")


def run_backup(dsn: str, to: Path, *args: str) -> dict:
    result = run_cli("backup", "--to", str(to), "--dsn", dsn, "--json", *args)
    assert result.returncode == 0, result.stderr
    if password_of(dsn):
        assert password_of(dsn) not in result.stdout + result.stderr
    return json.loads(result.stdout)


def test_backup_then_restore_reproduces_every_table(source: str, target: str, tmp_path: Path):
    before = independent_fingerprint(source)
    assert before["deribit.candles_1m"][0] > 1000 and before["deribit.instruments"][0] > 0
    made = run_backup(source, tmp_path)
    manifest = json.loads(Path(made["manifest"]).read_text())
    # The manifest's counts are count(*), for every table of both schemas.
    assert {name: t["rows"] for name, t in manifest["tables"].items()} == {n: c for n, (c, _) in before.items()}

    result = run_cli("restore", made["dump"], "--dsn", target)
    assert result.returncode == 0, result.stderr
    assert "every row count and checksum as in the manifest" in result.stderr
    if password_of(target):
        assert password_of(target) not in result.stdout + result.stderr
    assert independent_fingerprint(target) == before
    with psycopg.connect(target) as conn:
        # TimescaleDB restored properly: hypertables with their chunks, out of restoring mode.
        assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables").fetchone()[0] >= 3
        assert conn.execute("SHOW timescaledb.restoring").fetchone() == ("off",)
        # The restored database is usable: a new row lands in a hypertable.
        conn.execute("""INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
                        SELECT instrument_id, ts + interval '10 years', open, high, low, close, volume, cost
                        FROM deribit.candles_1m LIMIT 1""")


def test_restore_refuses_a_non_empty_database_in_one_line(source: str, made: dict):
    before = independent_fingerprint(source)
    result = run_cli("restore", made["dump"], "--dsn", source)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "is not empty" in result.stderr
    assert independent_fingerprint(source) == before


def test_restore_refuses_another_timescaledb_version_and_writes_nothing(made: dict, target: str, tmp_path: Path):
    made = copy_of(made, tmp_path)
    manifest_path = Path(made["manifest"])
    manifest = json.loads(manifest_path.read_text())
    manifest["timescaledb_version"] = "1.7.5"
    manifest_path.write_text(json.dumps(manifest))
    result = run_cli("restore", made["dump"], "--dsn", target)
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "the backup needs TimescaleDB 1.7.5" in result.stderr
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (0,)


def test_restore_detects_a_difference_from_the_manifest(made: dict, target: str, tmp_path: Path):
    made = copy_of(made, tmp_path)
    manifest_path = Path(made["manifest"])
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["deribit.candles_1m"]["rows"] += 1
    manifest_path.write_text(json.dumps(manifest))
    result = run_cli("restore", made["dump"], "--dsn", target)
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "differs from the backup's manifest: deribit.candles_1m" in result.stderr


def test_a_damaged_dump_is_refused_before_anything_is_written(made: dict, target: str, tmp_path: Path):
    made = copy_of(made, tmp_path)
    with open(made["dump"], "r+b") as dump:
        dump.seek(100)
        dump.write(b"\xff" * 16)
    result = run_cli("restore", made["dump"], "--dsn", target)
    assert result.returncode != 0 and "does not match its manifest" in result.stderr


def test_backup_does_not_wait_for_writers_and_sees_only_committed_rows(source: str, tmp_path: Path):
    """A writer holding ROW EXCLUSIVE on a hypertable (as the collector does) neither blocks nor leaks in."""
    with psycopg.connect(source) as writer:
        writer.execute("""INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
                          SELECT instrument_id, ts + interval '20 years', open, high, low, close, volume, cost
                          FROM deribit.candles_1m LIMIT 5""")  # uncommitted while the backup runs
        committed = independent_fingerprint(source)["deribit.candles_1m"][0]
        made = run_backup(source, tmp_path)
        writer.rollback()
    manifest = json.loads(Path(made["manifest"]).read_text())
    assert manifest["tables"]["deribit.candles_1m"]["rows"] == committed


def test_keep_prunes_the_oldest_backups(source: str, tmp_path: Path):
    for _ in range(2):
        backup.backup(source, tmp_path, bindirs=backup.client_bindirs(default_home()))
    made = run_backup(source, tmp_path, "--keep", "2")
    kept = backup.list_backups(tmp_path)
    assert len(kept) == 2 and str(kept[-1]) == made["dump"]
    assert len(list(tmp_path.glob("*.manifest.json"))) == 2 and len(made["pruned"]) == 1


def test_prune_keeps_the_newest_by_name_and_removes_partials(tmp_path: Path):
    stamps = ["20240101T000000.000000Z", "20240301T000000.000000Z", "20240201T000000.000000Z"]
    for stamp in stamps:
        (tmp_path / f"deribit-{stamp}.dump").write_text("x")
        (tmp_path / f"deribit-{stamp}.manifest.json").write_text("{}")
    (tmp_path / "deribit-20240401T000000.000000Z.dump.partial").write_text("x")
    (tmp_path / "unrelated.dump").write_text("x")
    removed = backup.prune(tmp_path, 1)
    assert sorted(p.name for p in removed) == [f"deribit-{s}.dump" for s in sorted(stamps)[:2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "deribit-20240301T000000.000000Z.dump",
        "deribit-20240301T000000.000000Z.manifest.json",
        "unrelated.dump",
    ]


def test_a_pg_dump_of_another_major_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 15.18'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"no pg_dump of PostgreSQL 17 found \(.*pg_dump is 15\)"):
        backup.pg_tool("pg_dump", 17, [])
    assert backup.pg_tool("pg_dump", 15, []) == str(fake)


def test_restore_needs_a_target_and_the_manifest(tmp_path: Path):
    dump = tmp_path / "deribit-20240101T000000.000000Z.dump"
    dump.write_bytes(b"PGDMP")
    env = {"DERIBIT_TS_DSN": None, "DERIBIT_TS_HOME": str(tmp_path)}
    no_target = run_cli("restore", str(dump), env=env)
    assert no_target.returncode != 0 and "say where to restore: --dsn" in no_target.stderr
    no_manifest = run_cli("restore", str(dump), "--dsn", "postgresql://u:secret@127.0.0.1:1/x", env=env)
    assert no_manifest.returncode != 0 and ".manifest.json is missing" in no_manifest.stderr
    assert "secret" not in no_manifest.stderr


def test_backup_of_an_unreachable_database_fails_in_one_line_without_the_password(tmp_path: Path):
    result = run_cli("backup", "--to", str(tmp_path / "b"), "--dsn", "postgresql://u:secret@127.0.0.1:1/x")
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()  # nothing made before the database answered


def test_help_names_the_locking_promise():
    result = run_cli("backup", "--help", env={"COLUMNS": "200", **os.environ})
    assert "ACCESS SHARE" in result.stdout


def test_backups_are_private_to_their_owner(source: str, tmp_path: Path):
    """Every row (and the database's roles) is in a backup: files 0600 in a 0700 directory, also one made 0755."""
    old = tmp_path / "made-before"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    for directory in (tmp_path / "new" / "backups", old):
        result = backup.backup(source, directory, bindirs=backup.client_bindirs(default_home()))
        assert directory.stat().st_mode & 0o777 == 0o700
        for path in (result.dump, result.manifest):
            assert path.stat().st_mode & 0o777 == 0o600, path
