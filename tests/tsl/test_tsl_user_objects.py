"""On the Community edition too, a user's views (one on a continuous aggregate), materialized views and grants
on `deribit.*` survive a re-application of every repeatable file."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from deribit_ts.db.migrate import apply_all, load_repeatables

pytestmark = pytest.mark.tsl

START = datetime(2023, 6, 1, tzinfo=UTC)
ROLE = "tsl_researcher"


def user_state(conn) -> dict:
    return {
        "relations": conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'research'::regnamespace ORDER BY 1"
        ).fetchall(),
        "grants": conn.execute(
            """SELECT c.relname, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
                WHERE c.relnamespace = 'deribit'::regnamespace AND a.grantee = %s::regrole ORDER BY 1, 2""",
            (ROLE,),
        ).fetchall(),
        "hourly": conn.execute("SELECT * FROM research.hourly ORDER BY 1, 2").fetchall(),
        "basis": conn.execute("SELECT count(*) FROM research.basis").fetchone()[0],
    }


@pytest.fixture
def research(tsl_migrated: str):
    yield tsl_migrated
    with psycopg.connect(tsl_migrated, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS research CASCADE")  # the test's own schema
        conn.execute(f"DROP OWNED BY {ROLE}")
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def test_user_objects_survive_reapplied_repeatables_on_tsl(research):
    with psycopg.connect(research, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE}")
        conn.execute(
            """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, raw)
               VALUES ('BTC-PERPETUAL', 'future', true, 'BTC', '{}')"""
        )
        conn.execute(
            """INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
               SELECT 1, %s + m * interval '1 minute', 100 + m, 101 + m, 99 + m, 100 + m, 1, 100
                 FROM generate_series(0, 179) m""",
            (START,),
        )
        conn.execute("CALL deribit_ts.refresh_rollups()")
        conn.execute("CREATE SCHEMA research")
        conn.execute("CREATE VIEW research.on_cagg AS SELECT instrument_id, ts, close FROM deribit.candles_1h")
        conn.execute("CREATE VIEW research.basis AS SELECT * FROM deribit.basis_1m")
        conn.execute(
            """CREATE MATERIALIZED VIEW research.hourly AS
               SELECT instrument_name, ts, close, candles FROM deribit.ohlcv_1h"""
        )
        conn.execute(f"GRANT USAGE ON SCHEMA deribit TO {ROLE}")
        conn.execute(f"GRANT SELECT ON deribit.ohlcv_1h, deribit.basis_1m, deribit.candles_1h TO {ROLE}")
        before = user_state(conn)
        assert len(before["hourly"]) == 3 and len(before["grants"]) == 3 and len(before["relations"]) == 3
        conn.execute("UPDATE deribit_ts.schema_repeatables SET sha256 = 'edited'")
    steps = apply_all(research)
    assert len(steps) == len([f for f in load_repeatables() if f.runs_on("timescale")])
    with psycopg.connect(research) as conn:
        assert user_state(conn) == before
