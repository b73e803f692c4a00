"""Upgrading a Community-edition database to bigint `candles` in the 15-minute and daily aggregates (migration
0047, which creates both again): the history rolled up before is rolled up again exactly, privileges granted on
them come back, and a user's view built on them is never dropped (the upgrade is refused, naming it, until the
user sets it aside)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from deribit_ts.db.migrate import apply_all, load_migrations
from deribit_ts.errors import UserError

pytestmark = pytest.mark.tsl

START = datetime(2023, 6, 1, 22, 17, tzinfo=UTC)
MINUTES = 2000  # across two midnights: three days
ROLE = "tsl_candles_reader"
LEVELS = (("candles_15m", "15 minutes"), ("candles_1d", "1 day"))


def candles_type(conn, relation: str) -> str:
    return conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attname = 'candles'",
        (relation,),
    ).fetchone()[0]


@pytest.fixture
def before_0047(tsl_fresh_schema: str, tsl_candles):
    """A database migrated but for 0047, holding rolled-up candles and a grant. The later migrations are applied
    too (before 0047, which does not depend on them): today's repeatable files use their tables."""
    apply_all(tsl_fresh_schema, migrations=[m for m in load_migrations() if m.version != 47])
    with psycopg.connect(tsl_fresh_schema, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE}")
        conn.execute(f"GRANT SELECT ON deribit.candles_1d, deribit.ohlcv_1d TO {ROLE}")
        iid = conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) VALUES ('BTC-PERPETUAL', 'future', '{}') "
            "RETURNING id"
        ).fetchone()[0]
        tsl_candles.insert(conn, "deribit.candles_1m", tsl_candles.synthetic(START, MINUTES, (iid,)))
        conn.execute("CALL deribit_ts.refresh_rollups()")
        assert candles_type(conn, "deribit.candles_1d") == "numeric"  # what 0047 changes
    yield tsl_fresh_schema
    with psycopg.connect(tsl_fresh_schema, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS research CASCADE")  # the test's own schema
        conn.execute(f"DROP OWNED BY {ROLE}")
        conn.execute(f"DROP ROLE {ROLE}")


def test_0047_makes_candles_bigint_and_keeps_the_history_and_the_grants(before_0047, tsl_candles):
    dsn = before_0047
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA research")
        conn.execute("CREATE VIEW research.daily AS SELECT instrument_name, ts, candles FROM deribit.ohlcv_1d")
    with pytest.raises(UserError) as refused:
        apply_all(dsn)
    assert "0047_rollup_candles_bigint.sql would drop objects of yours" in str(refused.value)
    assert "view research.daily" in str(refused.value)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('research.daily')").fetchone()[0] is not None  # rolled back
        assert candles_type(conn, "deribit.candles_1d") == "numeric"
        conn.execute("DROP VIEW research.daily")  # what the message asks for
    apply_all(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for relation in ("candles_15m", "candles_1d", "ohlcv_15m", "ohlcv_1d"):
            assert candles_type(conn, f"deribit.{relation}") == "bigint", relation
        # Exact before the refresh (real-time aggregation over the level below) and after it.
        for _ in ("before refresh", "after refresh"):
            for view, bucket in LEVELS:
                expected = tsl_candles.direct_rollup(conn, "deribit.candles_1m", bucket)
                assert tsl_candles.mismatches(tsl_candles.rollup_rows(conn, f"deribit.{view}"), expected) == []
            conn.execute("CALL deribit_ts.refresh_rollups()")
        daily = conn.execute("SELECT ts, candles FROM deribit.ohlcv_1d ORDER BY ts").fetchall()
        assert daily == [
            (datetime(2023, 6, 1, tzinfo=UTC), 103),  # from 22:17
            (datetime(2023, 6, 2, tzinfo=UTC), 1440),
            (datetime(2023, 6, 3, tzinfo=UTC), 2000 - 103 - 1440),
        ]
        for relation in ("deribit.candles_1d", "deribit.ohlcv_1d"):
            assert conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (ROLE, relation)).fetchone()[0]
        conn.execute("CREATE VIEW research.daily AS SELECT instrument_name, ts, candles FROM deribit.ohlcv_1d")
