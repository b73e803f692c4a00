"""`deribit-ts db reader NAME`: a login role that reads schema deribit and nothing else, against the real server."""

from __future__ import annotations

import json
import uuid

import cli_inprocess
import psycopg
import pytest

from deribit_ts.db.connect import connect
from deribit_ts.db.roles import ROLE_NAME

invoke = cli_inprocess.invoke  # the fixture


@pytest.fixture
def env(db, monkeypatch, tmp_path):
    for key in ("DERIBIT_TS_DSN", "DERIBIT_TS_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DERIBIT_TS_HOME", str(tmp_path / "home"))
    return db


def role_name() -> str:
    return f"reader_{uuid.uuid4().hex[:8]}"  # roles are cluster-wide: unique per test


def make_reader(invoke, dsn: str, name: str) -> tuple[str, str]:
    outcome = invoke(["db", "reader", name, "--dsn", dsn], 60)
    assert outcome.code == 0, outcome.err
    return outcome.out.strip(), outcome.err


def refused(conn: psycopg.Connection, statement: str) -> str:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(statement)
    conn.rollback()
    return str(caught.value)


def test_a_reader_reads_deribit_and_nothing_else(env, invoke):
    name = role_name()
    reader_dsn, err = make_reader(invoke, env, name)
    assert reader_dsn.startswith(f"postgresql://{name}:") and "created read-only role" in err
    password = psycopg.conninfo.conninfo_to_dict(reader_dsn)["password"]
    assert password not in err

    with psycopg.connect(env, autocommit=True) as owner:
        owner.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, base_currency, quote_currency, raw) "
            "VALUES ('BTC-PERPETUAL', 'future', 'BTC', 'USD', '{}') ON CONFLICT DO NOTHING"
        )
        attributes = owner.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, "
            "pg_has_role(%(r)s, 'pg_read_server_files', 'MEMBER'), "
            "pg_has_role(%(r)s, 'pg_execute_server_program', 'MEMBER') FROM pg_roles WHERE rolname = %(r)s",
            {"r": name},
        ).fetchone()
        assert attributes == (False, False, False, True, False, False)
        owner.execute("INSERT INTO deribit_ts.basis_ts_dirty (day) VALUES ('2024-01-01')")  # a day computed on read

    with psycopg.connect(reader_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM deribit.instruments").fetchone()[0] >= 1  # a table
        conn.execute("SELECT * FROM deribit.ohlcv_1m LIMIT 1").fetchall()  # views, some on hypertables
        conn.execute("SELECT * FROM deribit.coverage LIMIT 1").fetchall()  # reads deribit_ts as its owner
        conn.execute("SELECT * FROM deribit.gap_report LIMIT 1").fetchall()
        conn.execute("SELECT * FROM deribit.basis_term_structure LIMIT 1").fetchall()  # its marked days' function
        conn.execute("SELECT * FROM deribit.funding_apr LIMIT 1").fetchall()
        conn.rollback()
        assert "deribit_ts" in refused(conn, "SELECT * FROM deribit_ts.tasks LIMIT 1")
        refused(conn, "SELECT * FROM deribit_ts.runs LIMIT 1")
        refused(conn, "INSERT INTO deribit.instruments (instrument_name) VALUES ('X')")
        refused(conn, "DELETE FROM deribit.instruments")
        refused(conn, "COPY (SELECT 1) TO PROGRAM 'touch /tmp/deribit-ts-reader-pwned'")
        refused(conn, "COPY deribit.instruments FROM '/etc/passwd'")
        refused(conn, "CREATE VIEW deribit.mine AS SELECT 1")
        refused(conn, "SELECT pg_read_file('/etc/passwd')")


def test_objects_created_later_are_readable(env, invoke):
    name = role_name()
    reader_dsn, _ = make_reader(invoke, env, name)
    # What a later migration or view file does, as the role deribit-ts migrates with:
    view = f"later_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(env, autocommit=True) as owner:
        owner.execute(f"CREATE VIEW deribit.{view} AS SELECT count(*) AS n FROM deribit_ts.tasks")
        owner.execute(f"CREATE TABLE deribit.{view}_t (x int)")
    try:
        with psycopg.connect(reader_dsn) as conn:
            assert conn.execute(f"SELECT n FROM deribit.{view}").fetchone() is not None
            assert conn.execute(f"SELECT count(*) FROM deribit.{view}_t").fetchone() == (0,)
    finally:
        with psycopg.connect(env, autocommit=True) as owner:
            owner.execute(f"DROP VIEW deribit.{view}")
            owner.execute(f"DROP TABLE deribit.{view}_t")


def test_rerunning_rotates_the_password_and_says_so(env, invoke):
    name = role_name()
    first, _ = make_reader(invoke, env, name)
    outcome = invoke(["db", "reader", name, "--dsn", env, "--json"], 60)
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["role"] == name and report["created"] is False and report["rotated"] is True
    assert "rotated its password" in outcome.err
    with psycopg.connect(report["dsn"]) as conn:
        conn.execute("SELECT count(*) FROM deribit.instruments")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(first).close()


@pytest.mark.parametrize("name", ["", "0abc", "Analyst", "a-b", "a b", "pg_monitor", "x" * 64, "é", "a;drop"])
def test_a_name_that_is_not_a_plain_identifier_is_refused(env, invoke, name):
    assert not ROLE_NAME.fullmatch(name) or name.startswith("pg_")
    outcome = invoke(["db", "reader", name, "--dsn", env], 60)
    assert outcome.code != 0 and outcome.err.startswith("deribit-ts: ") and len(outcome.err.splitlines()) == 1


def test_an_existing_role_with_more_rights_is_not_taken_over(env, invoke):
    with connect(env) as conn:
        me = conn.info.user
        name = role_name()
        conn.execute(f"CREATE ROLE {name} LOGIN CREATEDB")
        conn.commit()
    for who, why in ((me, "connects as"), (name, "attributes beyond LOGIN")):
        outcome = invoke(["db", "reader", who, "--dsn", env], 60)
        assert outcome.code != 0 and why in outcome.err, outcome.err
        assert len(outcome.err.splitlines()) == 1


def test_an_unmigrated_database_says_what_to_do(fresh_db, invoke):
    outcome = invoke(["db", "reader", role_name(), "--dsn", fresh_db], 60)
    assert outcome.code != 0 and "db migrate" in outcome.err, outcome.err
