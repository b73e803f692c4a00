"""Storage and jobs on the Community edition: columnstore applied by `db compress` (the policies' rule: chunks
older than the window the collector still revises), compressed candles queried and rolled up as before,
upserts into the uncompressed window, `db size` ratios, `db jobs`, and DVOL's columnstore once its table exists.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import run_cli

from deribit_ts.db import storage
from deribit_ts.ingest import rollups

pytestmark = pytest.mark.tsl

OLD = datetime(2023, 5, 1, tzinfo=UTC)  # far older than the 14-day policy window: due for compression
MINUTES = 3 * 1440


def test_compress_applies_the_policies_and_the_data_reads_the_same(tsl_migrated, tsl_connect, tsl_candles):
    with tsl_connect() as conn:
        iid = conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) "
            "VALUES ('BTC-PERPETUAL', 'future', '{}') RETURNING id"
        ).fetchone()[0]
        tsl_candles.insert(conn, "deribit.candles_1m", tsl_candles.synthetic(OLD, MINUTES, (iid,)))
        recent = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
        tsl_candles.insert(conn, "deribit.candles_1m", tsl_candles.synthetic(recent, 60, (iid,), seed=9))
        before = conn.execute("SELECT * FROM deribit.candles_1m ORDER BY ts").fetchall()
        policies = conn.execute(
            "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'"
        ).fetchone()[0]
        assert policies >= 5  # candles, funding, index, snapshots (0007) and DVOL (ensure_columnstore)
        assert storage.compress_due(conn) == {"jobs": policies, "chunks_before": 0, "chunks_after": 1}
        chunks = dict(
            conn.execute(
                """SELECT range_start < now() - interval '14 days', is_compressed FROM timescaledb_information.chunks
                WHERE hypertable_name = 'candles_1m'"""
            ).fetchall()
        )
        assert chunks == {True: True, False: False}  # history compressed, the revision window not
        assert conn.execute("SELECT * FROM deribit.candles_1m ORDER BY ts").fetchall() == before
        # The collector's routine upsert lands in the uncompressed window.
        conn.execute(
            """INSERT INTO deribit.candles_1m VALUES (%s, %s, 1, 2, 0.5, 1.5, 3, 4.5)
                        ON CONFLICT (instrument_id, ts) DO UPDATE SET close = EXCLUDED.close""",
            (iid, recent),
        )
        assert conn.execute("SELECT close FROM deribit.candles_1m WHERE ts = %s", (recent,)).fetchone() == (1.5,)
        report = {r["hypertable"]: r for r in storage.storage_report(conn)}
    candles = report["deribit.candles_1m"]
    assert candles["rows"] == MINUTES + 60 and candles["compressed_chunks"] == 1
    assert candles["compression_ratio"] > 2
    rollups.refresh(tsl_migrated)  # rollups over compressed chunks
    with tsl_connect() as conn:
        expected = tsl_candles.direct_rollup(conn, "deribit.candles_1m", "1 day")
        assert tsl_candles.mismatches(tsl_candles.rollup_rows(conn, "deribit.candles_1d"), expected) == []


def test_jobs_list_the_policies_and_the_refresh_job(tsl_migrated, tsl_connect, tsl_candles):
    with tsl_connect() as conn:
        iid = conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) "
            "VALUES ('BTC-PERPETUAL', 'future', '{}') RETURNING id"
        ).fetchone()[0]
        tsl_candles.insert(conn, "deribit.candles_1m", tsl_candles.synthetic(OLD, 300, (iid,)))
        listed = storage.jobs(conn)
        procs = {(j["proc"], j["target"]) for j in listed}
        assert ("_timescaledb_functions.policy_compression", "deribit.candles_1m") in procs
        assert ("_timescaledb_functions.policy_refresh_continuous_aggregate", "deribit.candles_5m") in procs
        refresh_job = next(j for j in listed if j["proc"] == "deribit_ts.refresh_rollups_job")
        assert refresh_job["schedule_interval"] == "01:00:00"
        conn.execute("CALL run_job(%s)", (refresh_job["job_id"],))  # what the scheduler runs every hour
        hourly = conn.execute(
            """SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
                 FROM timescaledb_information.continuous_aggregates WHERE view_name = 'candles_1h'"""
        ).fetchone()[0]
        # History far outside the policies' windows is materialized by the job (job_stats are kept by the
        # scheduler only, which a foreground run_job bypasses).
        assert conn.execute(f"SELECT count(*) FROM {hourly}").fetchone() == (5,)


def test_cli_size_compress_jobs_on_community(tsl_migrated):
    size = run_cli("db", "size", "--json", "--dsn", tsl_migrated)
    assert size.returncode == 0, size.stderr
    assert "deribit.candles_1m" in {r["hypertable"] for r in json.loads(size.stdout)}
    compress = run_cli("db", "compress", "--json", "--dsn", tsl_migrated)
    assert compress.returncode == 0, compress.stderr
    assert json.loads(compress.stdout)["available"] is True
    jobs = run_cli("db", "jobs", "--dsn", tsl_migrated)
    assert jobs.returncode == 0 and "refresh_rollups_job" in jobs.stdout


def test_dvol_gets_its_columnstore_once_its_table_exists(tsl_migrated, tsl_connect):
    with tsl_connect() as conn:
        created_here = conn.execute("SELECT to_regclass('deribit.volatility_index') IS NULL").fetchone()[0]
        if created_here:  # before the options workstream's migration: the table appears later
            conn.execute("""CREATE TABLE deribit.volatility_index (currency text NOT NULL, ts timestamptz NOT NULL,
                              open float8, high float8, low float8, close float8, PRIMARY KEY (currency, ts))""")
            conn.execute("SELECT create_hypertable('deribit.volatility_index', by_range('ts', INTERVAL '30 days'))")
            assert conn.execute("SELECT deribit_ts.ensure_columnstore()").fetchone() == (1,)
        assert conn.execute("SELECT deribit_ts.ensure_columnstore()").fetchone() == (0,)  # idempotent
        settings = conn.execute(
            """SELECT segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings
                WHERE hypertable = 'deribit.volatility_index'::regclass"""
        ).fetchone()
        assert settings == ("currency", "ts DESC")
        assert conn.execute(
            """SELECT count(*) FROM timescaledb_information.jobs
                WHERE proc_name = 'policy_compression' AND hypertable_name = 'volatility_index'"""
        ).fetchone() == (1,)
        if created_here:
            conn.execute("DROP TABLE deribit.volatility_index")
