"""Shared fixtures: a real TimescaleDB for every test module.

The server is the best one at hand, in this order:
1. ``DERIBIT_TS_TEST_DSN``: an existing server (the role needs CREATEDB);
2. testcontainers with the official ``timescale/timescaledb`` image, when a Docker daemon answers;
3. the embedded cluster, initialised in a temporary home from the installed private prefix.
Each test module gets its own freshly created and migrated database on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import create_database, drop_database

from deribit_ts.config import default_home
from deribit_ts.db.migrate import apply_all

# A backfill whose stderr is not a terminal prints a progress line every few seconds; tests that assert an
# error is the only line on stderr must not see one because the machine is slow (tests/test_progress.py sets it).
os.environ.setdefault("DERIBIT_TS_PROGRESS_INTERVAL", "3600")

TIMESCALE_IMAGE = "timescale/timescaledb:latest-pg17"
REPO = Path(__file__).resolve().parent.parent


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no client library, no socket, no daemon: all mean "no Docker here"
        return False


def _with_database(dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a TimescaleDB server (its maintenance database) that tests may create databases on."""
    configured = os.environ.get("DERIBIT_TS_TEST_DSN")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(TIMESCALE_IMAGE, driver=None) as container:
            yield container.get_connection_url()
        return
    from deribit_ts.db.embedded import Cluster

    prefix = Path(os.environ.get("DERIBIT_TS_PG_PREFIX") or default_home() / "postgres")
    cluster = Cluster(tmp_path_factory.mktemp("cluster-home"), prefix=prefix)
    cluster.up(quiet=True)
    try:
        yield cluster.url()
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def empty_db(pg_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a new, empty database (no extension, no schema) for this test module."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    name = create_database(pg_server, label)
    try:
        yield _with_database(pg_server, name)
    finally:
        drop_database(pg_server, name)


@pytest.fixture(scope="module")
def db(empty_db: str) -> str:
    """DSN of a fresh database with every migration and view applied."""
    apply_all(empty_db)
    return empty_db


@pytest.fixture
def new_db(pg_server: str) -> Iterator[str]:
    """A fresh migrated database of its own for one test (backfill tests each need a virgin plan)."""
    name = create_database(pg_server, "nd")
    try:
        dsn = _with_database(pg_server, name)
        apply_all(dsn)
        yield dsn
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def fresh_db(pg_server: str) -> Iterator[str]:
    """An empty database of its own for one test (for tests that need a virgin ledger)."""
    name = create_database(pg_server, "fn")
    try:
        yield _with_database(pg_server, name)
    finally:
        drop_database(pg_server, name)
