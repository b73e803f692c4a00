"""A server that gains the Community license replaces the Apache rollups with continuous aggregates: released
migrations drop the old rollup views with CASCADE there. A user's view built on them is never dropped silently
(the migration is refused, rolled back, the view named); once the user has set it aside, the switch goes through
and the privileges granted on the re-created relations are granted again."""

from __future__ import annotations

import psycopg
import pytest
from test_tsl_upgrade import ledger, migrate_as_apache

from deribit_ts.db.migrate import apply_all
from deribit_ts.errors import UserError

pytestmark = pytest.mark.tsl

ROLE = "tsl_switch_reader"


@pytest.fixture
def apache_state(tsl_fresh_schema: str):
    migrate_as_apache(tsl_fresh_schema)
    with psycopg.connect(tsl_fresh_schema, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE}")
    yield tsl_fresh_schema
    with psycopg.connect(tsl_fresh_schema, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS research CASCADE")  # the test's own schema
        conn.execute(f"DROP OWNED BY {ROLE}")
        conn.execute(f"DROP ROLE {ROLE}")


def privileged(conn, relation: str) -> bool:
    return conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (ROLE, relation)).fetchone()[0]


def test_the_edition_switch_refuses_to_drop_a_users_view_and_keeps_grants(apache_state):
    dsn = apache_state
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA research")
        conn.execute("CREATE VIEW research.hourly AS SELECT instrument_name, ts, close FROM deribit.ohlcv_1h")
        conn.execute(f"GRANT SELECT ON deribit.ohlcv_1h, deribit.candles_1h, deribit.ohlcv_1m TO {ROLE}")
    with pytest.raises(UserError) as refused:
        apply_all(dsn)
    message = str(refused.value)
    assert "0006_rollups_continuous.sql would drop objects of yours" in message and "view research.hourly" in message
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert ledger(conn)["0006_rollups_continuous.sql"] == ("skipped", "apache")  # rolled back
        assert conn.execute("SELECT to_regclass('research.hourly')").fetchone()[0] is not None
        conn.execute("DROP VIEW research.hourly")  # what the message asks for
    apply_all(dsn)
    with psycopg.connect(dsn) as conn:
        assert ledger(conn)["0006_rollups_continuous.sql"][0] == "applied"
        kinds = conn.execute(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_name = 'candles_1h'"
        ).fetchone()[0]
        assert kinds == 1  # candles_1h is now a continuous aggregate: a new relation
        assert all(privileged(conn, r) for r in ("deribit.ohlcv_1h", "deribit.candles_1h", "deribit.ohlcv_1m"))
