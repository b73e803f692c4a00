"""The PGlite server itself: TimescaleDB with the TSL module, reachable with psycopg, self-healing."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.tsl


def test_timescaledb_runs_under_the_community_license(tsl_connect) -> None:
    with tsl_connect() as conn:
        license_name = conn.execute("SHOW timescaledb.license").fetchone()[0]
        version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()[0]
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
