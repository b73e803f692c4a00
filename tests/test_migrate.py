"""The migration runner against a real TimescaleDB: order, checksums, idempotence, concurrency, editions."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from deribit_ts.db.connect import server_info
from deribit_ts.db.migrate import apply_all, edition_of, load_migrations, load_repeatables, plan
from deribit_ts.errors import UserError
from deribit_ts.resources import migrations_dir, sql_dir


def ledger(dsn: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT version, name, status FROM deribit_ts.schema_migrations ORDER BY version"
        ).fetchall()


def server_edition(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return edition_of(server_info(conn))


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), target)
    return target


def test_fresh_database_applies_every_file_in_order_once(fresh_db):
    edition = server_edition(fresh_db)
    steps = apply_all(fresh_db)
    files = load_migrations()
    versioned = [s for s in steps if s.file.version is not None]
    assert [s.file.version for s in versioned] == sorted(f.version for f in files)
    expected = {f.version: ("applied" if f.runs_on(edition) else "skipped") for f in files}
    assert {v: status for v, _, status in ledger(fresh_db)} == expected
    assert apply_all(fresh_db) == []  # a second run changes nothing


def test_edition_split_on_this_server(fresh_db):
    apply_all(fresh_db)
    edition = server_edition(fresh_db)
    status = {name: st for _, name, st in ledger(fresh_db)}
    with psycopg.connect(fresh_db) as conn:
        caggs = {
            r[0]
            for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'deribit'"
            )
        }
        plain_views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'deribit'")}
    if edition == "timescale":
        assert status["0006_rollups_continuous.sql"] == "applied"
        assert status["0005_rollups_fallback.sql"] == "skipped"
        assert caggs == {"candles_1h", "candles_1d"}
    else:
        assert status["0005_rollups_fallback.sql"] == "applied"
        assert status["0006_rollups_continuous.sql"] == "skipped"
        assert status["0007_columnstore.sql"] == "skipped"
        assert caggs == set()
        assert {"candles_1h", "candles_1d"} <= plain_views
    assert {"ohlcv_1m", "ohlcv_1h", "ohlcv_1d", "funding_rates", "index_prices", "option_snapshots"} <= plain_views


def test_skipped_files_are_planned_when_the_server_gains_the_license(fresh_db):
    apply_all(fresh_db)
    edition = server_edition(fresh_db)
    other = "apache" if edition == "timescale" else "timescale"
    with psycopg.connect(fresh_db) as conn:
        steps = plan(conn, other, load_migrations(), load_repeatables())
    newly = {s.file.name for s in steps if s.action == "apply"}
    expected = {f.name for f in load_migrations() if f.edition == other}
    assert newly == expected and expected
    # Files that already ran are not planned again; views are re-created after the new migrations.
    assert all(s.reason == "previously skipped for the edition" for s in steps if s.action == "apply")
    assert steps[-1].action == "reapply"


def test_changed_applied_migration_is_refused(fresh_db, tmp_path):
    apply_all(fresh_db)
    changed = copy_migrations(tmp_path)
    target = changed / "0002_instruments.sql"
    target.write_text(target.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(UserError, match=r"0002_instruments\.sql was changed after it was applied"):
        apply_all(fresh_db, migrations=load_migrations(changed))


def test_new_migration_and_changed_view_are_applied_later(fresh_db, tmp_path):
    apply_all(fresh_db)
    changed = copy_migrations(tmp_path)
    (changed / "0900_extra.sql").write_text("CREATE TABLE deribit_ts.extra (x int);\n")
    steps = apply_all(fresh_db, migrations=load_migrations(changed))
    assert [s.file.name for s in steps if s.action == "apply"] == ["0900_extra.sql"]
    assert any(s.action == "reapply" for s in steps)
    assert apply_all(fresh_db, migrations=load_migrations(changed)) == []


def test_database_newer_than_the_code_is_refused(fresh_db, tmp_path):
    changed = copy_migrations(tmp_path)
    (changed / "0900_extra.sql").write_text("SELECT 1;\n")
    apply_all(fresh_db, migrations=load_migrations(changed))
    with pytest.raises(UserError, match="upgrade deribit-ts"):
        apply_all(fresh_db)


def test_failed_migration_leaves_nothing_half_written(fresh_db, tmp_path):
    apply_all(fresh_db)
    changed = copy_migrations(tmp_path)
    (changed / "0900_broken.sql").write_text("CREATE TABLE deribit_ts.half (x int);\nSELECT no_such_function();\n")
    with pytest.raises(UserError, match=r"0900_broken\.sql failed: .*no_such_function"):
        apply_all(fresh_db, migrations=load_migrations(changed))
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('deribit_ts.half')").fetchone() == (None,)
    assert 900 not in {v for v, _, _ in ledger(fresh_db)}


def test_no_transaction_directive_runs_statements_outside_a_transaction(fresh_db, tmp_path):
    apply_all(fresh_db)
    changed = copy_migrations(tmp_path)
    (changed / "0900_concurrent_index.sql").write_text(
        "-- deribit-ts: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS instruments_state_idx ON deribit.instruments (state);\n"
    )
    apply_all(fresh_db, migrations=load_migrations(changed))
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('deribit.instruments_state_idx')").fetchone()[0] is not None


def test_concurrent_runs_are_serialized(fresh_db):
    errors: list[BaseException] = []
    results: list[list] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            results.append(apply_all(fresh_db))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    # Exactly one run did the work; the others found everything applied once they got the lock.
    assert sorted(len(r) > 0 for r in results) == [False, False, True]
    versions = [v for v, _, _ in ledger(fresh_db)]
    assert versions == sorted(set(versions)) == sorted(f.version for f in load_migrations())


def test_dry_run_changes_nothing(fresh_db):
    steps = apply_all(fresh_db, dry_run=True)
    assert steps and all(s.action in ("apply", "skip", "reapply") for s in steps)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regnamespace('deribit_ts')").fetchone() == (None,)


def test_released_migrations_are_unchanged():
    """A migration that has reached any database is immutable: users' ledgers refuse a changed file.

    New migrations are added to tests/data/released_migrations.sha256 when they are committed; a change to a
    listed file belongs in a new migration instead (the runner would refuse it on every existing install).
    """
    import hashlib

    manifest = Path(__file__).parent / "data" / "released_migrations.sha256"
    recorded = dict(reversed(line.split()) for line in manifest.read_text().splitlines() if line.strip())
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in migrations_dir().glob("*.sql")}
    changed = sorted(name for name, digest in recorded.items() if on_disk.get(name) != digest)
    unlisted = sorted(set(on_disk) - set(recorded))
    assert not changed, f"released migrations changed or removed: {changed}; put the change in a new migration"
    assert not unlisted, f"add the new migrations to {manifest.name}: {unlisted}"


def test_status_counts_pending_migrations_changed_views_and_refusals(fresh_db, tmp_path):
    from deribit_ts.db.migrate import migration_state

    apply_all(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        state = migration_state(conn)
        assert (state["pending"], state["views_changed"], state["problem"]) == (0, 0, None)
        changed = copy_migrations(tmp_path)
        (changed / "0900_extra.sql").write_text("CREATE TABLE deribit_ts.extra (x int);\n")
        views = tmp_path / "sql"
        shutil.copytree(sql_dir(), views)
        first_view = sorted(views.glob("*.sql"))[0]
        first_view.write_text(first_view.read_text() + "\n-- edited\n")
        state = migration_state(conn, load_migrations(changed), load_repeatables(views))
        assert (state["pending"], state["views_changed"]) == (1, 1)
        (changed / "0002_instruments.sql").write_text("-- rewritten\n")
        state = migration_state(conn, load_migrations(changed), load_repeatables(views))
        assert state["pending"] is None and "0002_instruments.sql was changed" in state["problem"]


def test_a_new_database_says_its_views_are_new_and_an_upgrade_what_changed(fresh_db):
    # A first `db up` must not claim the views "changed": they did not exist.
    steps = apply_all(fresh_db)
    assert {s.reason for s in steps if s.action == "reapply"} == {"new"}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("UPDATE deribit_ts.schema_repeatables SET sha256 = 'old' WHERE name = '10_market_views.sql'")
    steps = apply_all(fresh_db)
    reasons = {s.file.name: s.reason for s in steps if s.action == "reapply"}
    assert reasons["10_market_views.sql"] == "changed" and set(reasons.values()) == {"changed", "after migrations"}
