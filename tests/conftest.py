"""Shared fixtures: a real TimescaleDB for every test module.

The server is the best one at hand, in this order:
1. ``DERIBIT_TS_TEST_DSN``: an existing server (the role needs CREATEDB);
2. testcontainers with the official ``timescale/timescaledb`` image, when a Docker daemon answers;
3. the embedded cluster, initialised in a temporary home from the installed private prefix.
Each test module gets its own migrated database on it, cloned (CREATE DATABASE ... TEMPLATE) from one database
migrated once per test process.

The suite runs in parallel (pytest-xdist, `-n` in pyproject's addopts): every fixture here is per worker
process. The embedded cluster is one per worker; on a shared server (DSN, container) each worker names its
databases uniquely. Tests of one module run on one worker (their module fixtures are built once), except tests
marked `slow`, which are scheduled one by one, longest first, so no worker is left with a queue of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Where the environment turns bytecode caching off (PYTHONDONTWRITEBYTECODE), every test process would compile the
# package and rewrite every test module again: half of a worker's collection, 3 of 6 s. The tests' processes
# cache it as Python does by default (__pycache__, ignored by git); the commands they start keep the setting.
sys.dont_write_bytecode = False

import psycopg
import pytest
from helpers import clone_database, create_database, drop_database

from deribit_ts.config import default_home
from deribit_ts.db.migrate import apply_all

# A backfill whose stderr is not a terminal prints a progress line every few seconds; tests that assert an
# error is the only line on stderr must not see one because the machine is slow (tests/test_progress.py sets it).
os.environ.setdefault("DERIBIT_TS_PROGRESS_INTERVAL", "3600")

TIMESCALE_IMAGE = "timescale/timescaledb:latest-pg17"
REPO = Path(__file__).resolve().parent.parent
TSL_DIR = REPO / "tests" / "tsl"


def _docker_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False  # nothing to ask (the client library would leave its failed socket open for the GC to find)
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
    # A home outside pytest's temporary root: every pytest session that starts (other checkouts', xdist's
    # controller) chmods /tmp/pytest-of-USER to 0700, which voids the search ACL the server's user needs there.
    parent = Path(tempfile.mkdtemp(prefix="deribit-ts-pytest-"))
    cluster = Cluster(parent / "home", prefix=prefix)
    try:
        cluster.up(quiet=True)
        _for_tests_only(cluster.superuser_url())
        yield cluster.superuser_url()  # (the suite creates and drops databases, tablespaces and roles)
    finally:
        cluster.down()
        shutil.rmtree(parent, ignore_errors=True)


def _for_tests_only(superuser_url: str) -> None:
    """No fsync and no full-page images on the suite's own throwaway cluster: they guard against a crash of the
    operating system, which no test makes (a killed server recovers from the page cache all the same), and they
    made every database a test clones cost about 0.4 s of CPU (some 90 clones in the developer loop)."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET full_page_writes = off")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="session")
def migrated_template(pg_server: str) -> Iterator[str]:
    """Name of a database with every migration and view applied, migrated once per worker: `db` and `new_db`
    are copies of it (CREATE DATABASE ... TEMPLATE: ~0.1 s, a fifth of migrating, and it does not grow with
    the migrations)."""
    name = create_database(pg_server, "template")
    try:
        apply_all(_with_database(pg_server, name))
        yield name
    finally:
        drop_database(pg_server, name)


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
def db(pg_server: str, migrated_template: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a fresh database with every migration and view applied, shared by the tests of this module."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    name = clone_database(pg_server, migrated_template, label)
    try:
        yield _with_database(pg_server, name)
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def new_db(pg_server: str, migrated_template: str) -> Iterator[str]:
    """A fresh migrated database of its own for one test (backfill tests each need a virgin plan)."""
    name = clone_database(pg_server, migrated_template, "nd")
    try:
        yield _with_database(pg_server, name)
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


# The workers tell the scheduler (in the controlling process) which tests are marked slow: through files in a
# directory the controller names in this variable before it starts them.
SLOW_IDS_ENV = "DERIBIT_TS_TEST_SLOW_IDS"


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background (`pytest &`, nohup) inherits SIGINT ignored, and so would every process
    # it starts: the tests that stop a server with SIGINT would fail for the shell's reason, not the server's.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        os.environ[SLOW_IDS_ENV] = tempfile.mkdtemp(prefix="deribit-ts-slow-ids-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and SLOW_IDS_ENV in os.environ:
        shutil.rmtree(os.environ.pop(SLOW_IDS_ENV), ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest units first, the short modules fill in around them: slow tests, then the tsl tier (one unit
    of some 40 s on one worker: collected last, as its folder sorts, it ran alone at the end with the other
    cores idle). On an xdist worker, the slow tests' ids are written for the scheduler below."""
    slow = [item for item in items if item.get_closest_marker("slow")]
    rest = [item for item in items if not item.get_closest_marker("slow")]
    tsl = [item for item in rest if TSL_DIR in item.path.parents]
    items[:] = slow + tsl + [item for item in rest if TSL_DIR not in item.path.parents]
    workerinput = getattr(config, "workerinput", None)
    if workerinput and os.environ.get(SLOW_IDS_ENV):
        ids = "".join(f"{item.nodeid}\n" for item in slow)
        (Path(os.environ[SLOW_IDS_ENV]) / workerinput["workerid"]).write_text(ids)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` is a worker per core, but two per core for the developer loop (`-m "not slow"`): half of its time
    is waiting (the simulator's latency, the rate limits under test, processes starting) that more workers
    overlap. The long scenarios assert simulated time at 60x, so the whole suite keeps a core per worker."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or config.getoption("markexpr") != "not slow":
        return None  # xdist's own count
    return 2 * len(os.sched_getaffinity(0))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadscope`, with units of our own: a module's tests share one worker (its module-scoped fixtures
    are built once), the tsl tier shares one worker (one PGlite server), and each test marked slow is a unit of
    its own, so a module's long scenarios spread over the workers. (xdist's loadgroup would express this with
    marks, but it renames test ids in a way pytest 9 no longer honours.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndSlowTests(LoadScopeScheduling):
        _slow: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._slow is None:  # first called once every worker has collected (and written its list)
                folder = Path(os.environ.get(SLOW_IDS_ENV) or "/nonexistent")
                self._slow = {line for f in folder.glob("*") for line in f.read_text().splitlines()}
            if nodeid in self._slow:
                return nodeid
            module = nodeid.split("::", 1)[0]
            return "tsl" if TSL_DIR in (REPO / module).parents else module

    return ModulesAndSlowTests(config, log)
