"""`db size`, `db compress`, `db jobs` on the Apache edition (the embedded cluster): sizes work, compression and
jobs say plainly that this edition has none and what runs the refresh instead."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
from helpers import run_cli


def test_db_size_counts_rows_and_bytes_per_hypertable(new_db):
    with psycopg.connect(new_db, autocommit=True) as conn:
        iid = conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, raw) "
            "VALUES ('BTC-PERPETUAL', 'future', '{}') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO deribit.candles_1m
                        SELECT %s, g, 1, 2, 0.5, 1.5, 3, 4.5
                          FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute', '1 minute') g""",
            (iid, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=3)),
        )
    result = run_cli("db", "size", "--json", "--dsn", new_db)
    assert result.returncode == 0, result.stderr
    report = {r["hypertable"]: r for r in json.loads(result.stdout)}
    candles = report["deribit.candles_1m"]
    assert candles["rows"] == 3 * 1440
    assert candles["total_bytes"] > 0 and candles["bytes_per_row"] == round(candles["total_bytes"] / (3 * 1440), 1)
    assert candles["compression_ratio"] is None and candles["compressed_chunks"] == 0
    assert report["deribit_ts.rollup_1h"]["rows"] == 0  # not refreshed yet: the views aggregate on read
    text = run_cli("db", "size", "--dsn", new_db)
    assert text.returncode == 0 and "deribit.candles_1m" in text.stdout and "4,320" in text.stdout


def test_db_compress_and_jobs_explain_the_apache_edition(new_db):
    result = run_cli("db", "compress", "--dsn", new_db)
    assert result.returncode == 0
    assert "not available on the TimescaleDB Apache edition" in result.stderr
    as_json = json.loads(run_cli("db", "compress", "--json", "--dsn", new_db).stdout)
    assert as_json["available"] is False
    jobs = run_cli("db", "jobs", "--json", "--dsn", new_db)
    assert jobs.returncode == 0, jobs.stderr
    listed = json.loads(jobs.stdout)
    assert listed["edition"] == "apache" and listed["jobs"] == []
    assert "deribit-ts refresh" in listed["note"] and "collector" in listed["note"]


def test_the_refresh_timer_runs_the_refresh():
    import configparser
    from pathlib import Path

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    units = {}
    for name in ("deribit-ts-refresh.service", "deribit-ts-refresh.timer"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(deploy / name)
        units[name] = parser
    service = units["deribit-ts-refresh.service"]["Service"]
    assert service["Type"] == "oneshot" and service["ExecStart"].split()[1:] == ["refresh"]
    assert units["deribit-ts-refresh.timer"]["Timer"]["OnUnitActiveSec"] == "10min"
    assert run_cli("refresh", "--help").returncode == 0
