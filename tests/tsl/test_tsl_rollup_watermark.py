"""After migration 0047 created the 15-minute and daily aggregates again WITH NO DATA, their refresh policy may run
before the full refresh (`deribit-ts refresh`, the hourly job): it materializes only its recent window and moves
the aggregate's watermark to that window's end, and real-time aggregation answers only above the watermark, so
the history below it would be hidden until the full refresh. Migration 0053 refreshes both over their whole range
at the upgrade; with it the rollups stay exact when the policies run first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from deribit_ts.db.migrate import apply_all, load_migrations

pytestmark = pytest.mark.tsl

OLD = datetime(2023, 6, 1, 22, 17, tzinfo=UTC)  # history long before the policies' windows
LEVELS = (("candles_15m", "15 minutes"), ("candles_1d", "1 day"))


def upgraded_to_0047(dsn: str, tsl_candles, skip: tuple[int, ...] = ()) -> None:
    """A database migrated but for 0047 and 0053 (the later ones too: today's repeatable files use their tables)
    holding rolled-up candles, then migrated up to date (but the `skip` migrations)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS deribit CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS deribit_ts CASCADE")
    apply_all(dsn, migrations=[m for m in load_migrations() if m.version not in (47, 53)])
    loaded(dsn, tsl_candles)
    apply_all(dsn, migrations=[m for m in load_migrations() if m.version not in skip])


def loaded(dsn: str, tsl_candles) -> None:
    """Old history and the last two days (inside both policies' windows), rolled up before the upgrade."""
    recent = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        iid = conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) VALUES ('BTC-PERPETUAL', 'future', '{}') "
            "RETURNING id"
        ).fetchone()[0]
        rows = tsl_candles.synthetic(OLD, 600, (iid,)) + tsl_candles.synthetic(recent, 600, (iid,), seed=8)
        tsl_candles.insert(conn, "deribit.candles_1m", rows)
        conn.execute("CALL deribit_ts.refresh_rollups()")


def run_policies(conn, tsl_candles) -> None:
    """The two aggregates' refresh policies, as the job scheduler would run them (no background workers here)."""
    for view, _ in LEVELS:
        job = tsl_candles.job_id(conn, "policy_refresh_continuous_aggregate", "deribit", view)
        conn.execute("CALL run_job(%s)", (job,))


def missing_buckets(conn, tsl_candles) -> dict[str, list[str]]:
    return {
        view: tsl_candles.mismatches(
            tsl_candles.rollup_rows(conn, f"deribit.{view}"),
            tsl_candles.direct_rollup(conn, "deribit.candles_1m", bucket),
        )
        for view, bucket in LEVELS
    }


def test_a_policy_run_right_after_the_upgrade_hides_no_history(tsl_fresh_schema, tsl_candles):
    dsn = tsl_fresh_schema
    upgraded_to_0047(dsn, tsl_candles)  # 0047 creates the two aggregates again, 0053 refreshes them
    with psycopg.connect(dsn, autocommit=True) as conn:
        run_policies(conn, tsl_candles)  # before any `deribit-ts refresh`
        assert missing_buckets(conn, tsl_candles) == {"candles_15m": [], "candles_1d": []}
        old_days = conn.execute("SELECT count(*) FROM deribit.ohlcv_1d WHERE ts < '2024-01-01'").fetchone()[0]
        assert old_days == 2  # 600 minutes from 22:17


def test_without_the_full_refresh_a_policy_run_hides_the_history(tsl_fresh_schema, tsl_candles):
    """What 0053 prevents, shown on the upgrade without it."""
    dsn = tsl_fresh_schema
    upgraded_to_0047(dsn, tsl_candles, skip=(53,))
    with psycopg.connect(dsn, autocommit=True) as conn:
        run_policies(conn, tsl_candles)
        hidden = missing_buckets(conn, tsl_candles)
        conn.execute("CALL deribit_ts.refresh_rollups()")  # the full refresh shows it again
        assert missing_buckets(conn, tsl_candles) == {"candles_15m": [], "candles_1d": []}
    assert all(problems and "missing" in problems[0] for problems in hidden.values()), hidden
