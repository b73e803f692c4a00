"""`deribit-ts status` as a monitoring check: thresholds, exit codes, the report of a database without a collector.

(Reports of running collectors are checked in tests/test_collect.py.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import run_cli

from deribit_ts.collect.status import DEFAULT_MAX_LAG, Thresholds
from deribit_ts.errors import UserError


def test_thresholds_from_flags_and_environment(monkeypatch):
    monkeypatch.setenv("DERIBIT_TS_STATUS_MAX_LAG", "index=300, funding=10")
    t = Thresholds.parse(["candles.perpetual=120", "funding=20"], None)
    assert t.max_lag["index"] == 300 and t.max_lag["candles.perpetual"] == 120
    assert t.max_lag["funding"] == 20  # the flag wins over the environment
    assert t.max_lag["candles.future"] == DEFAULT_MAX_LAG["candles.future"]
    monkeypatch.setenv("DERIBIT_TS_STATUS_MAX_HEARTBEAT_AGE", "45")
    assert Thresholds.parse([], None).max_heartbeat_age == 45
    assert Thresholds.parse([], 90).max_heartbeat_age == 90
    for bad in (["index"], ["index=soon"], ["=5"], ["index=-1"]):
        with pytest.raises(UserError, match="DATASET=SECONDS"):
            Thresholds.parse(bad, None)


def test_no_collector_is_not_ok(db):
    result = run_cli("status", "--json", "--dsn", db)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and report["leader"] is None
    assert report["problems"] == ["no collector has run on this database (start `deribit-ts collect`)"]
    text = run_cli("status", "--dsn", db)
    assert text.returncode == 1 and "NOT OK" in text.stderr and "Traceback" not in text.stderr


def test_a_stale_dataset_fails_the_check(db):
    """A heartbeat row and watermarks written by hand: fresh passes, one stale dataset fails with its name."""
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, raw,
                            creation_ts) VALUES ('BTC-PERPETUAL', 'future', true, 'BTC', '{}', '2018-08-14')""")
        conn.execute(
            """INSERT INTO deribit_ts.collector_processes (process_id, host, pid, backend_pid, role, state,
                      exchange_now, settings)
               VALUES ('h/1/1', 'h', 1, pg_backend_pid(), 'leader', 'collecting', %s, %s)""",
            (
                now,
                json.dumps({"currencies": ["BTC"], "kinds": ["perpetual"], "datasets": ["candles.perpetual", "index"]}),
            ),
        )
        for dataset, key, until in (
            ("candles", "BTC-PERPETUAL", now - timedelta(seconds=30)),
            ("index", "btc_usd", now - timedelta(minutes=10)),
        ):
            conn.execute(
                "INSERT INTO deribit_ts.watermarks (dataset, key, covered_until) VALUES (%s, %s, %s)",
                (dataset, key, until),
            )
        # The heartbeat's backend is this connection: hold the leader lock on it while status looks.
        conn.execute("SELECT pg_advisory_lock(1685222515, 1)")
        result = run_cli("status", "--json", "--dsn", db)
        report = json.loads(result.stdout)
        assert result.returncode == 1
        assert report["leader"]["process_id"] == "h/1/1"
        by_name = {d["dataset"]: d for d in report["datasets"]}
        assert not by_name["candles.perpetual"]["stale"] and by_name["index"]["stale"]
        # (the lag counts on from the heartbeat's exchange time by the database's clock: a few seconds more)
        [problem] = report["problems"]
        assert problem.startswith("index is stale: lag 6") and problem.endswith("(threshold 150 s)"), problem
        relaxed = run_cli("status", "--max-lag", "index=900", "--dsn", db)
        assert relaxed.returncode == 0, relaxed.stderr
        # every timestamp in one form (UTC, to the second), every duration in one form, even in another time zone
        assert all(
            v is None or v.endswith("+00:00") for v in (report["reference_time"], report["leader"]["last_heartbeat"])
        )
        shown = run_cli("status", "--dsn", db, env={"PGTZ": "America/New_York"}).stdout
        stamps = re.findall(r"\d{4}-\d\d-\d\d[ T][\d:.]+\S*", shown)
        assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", t) for t in stamps), shown
        assert "2024-03-01 11:59:30Z" in shown and re.search(r"index +1 2024-03-01 11:50:00Z +\d+m\d\ds ", shown), shown
        conn.execute("SELECT pg_advisory_unlock(1685222515, 1)")


def test_the_trades_lag_counts_from_the_oldest_gap_still_being_filled(new_db):
    """The trade tape's lag: from the scan's watermark, or from the oldest collector trades task still open (a gap
    beyond the by-currency route's reach); in --json and in the text."""
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    with psycopg.connect(new_db, autocommit=True) as conn:
        conn.execute("""INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, raw,
                            creation_ts) VALUES ('BTC-PERPETUAL', 'future', true, 'BTC', '{}', '2018-08-14')""")
        conn.execute(
            """INSERT INTO deribit_ts.collector_processes (process_id, host, pid, backend_pid, role, state,
                      exchange_now, settings)
               VALUES ('h/1/1', 'h', 1, pg_backend_pid(), 'leader', 'collecting', %s, %s)""",
            (now, json.dumps({"currencies": ["BTC"], "kinds": ["perpetual"], "datasets": ["trades.perpetual"]})),
        )
        conn.execute(
            "INSERT INTO deribit_ts.watermarks (dataset, key, covered_until) VALUES ('perpetual_trades', 'BTC', %s)",
            (now - timedelta(seconds=30),),
        )
        conn.execute(
            """INSERT INTO deribit_ts.tasks (dataset, key, range_start, range_end, priority)
               VALUES ('trades', 'BTC-PERPETUAL', %s, %s, -500)""",
            (now - timedelta(days=2), now - timedelta(days=1)),
        )
        conn.execute("SELECT pg_advisory_lock(1685222515, 1)")
        report = json.loads(run_cli("status", "--json", "--dsn", new_db).stdout)
        [trades] = report["datasets"]
        assert trades["dataset"] == "trades.perpetual" and trades["stale"] and trades["threshold_s"] == 150
        assert trades["covered_until"] == (now - timedelta(days=2)).isoformat() and trades["lag_s"] > 2 * 86400
        conn.execute("UPDATE deribit_ts.tasks SET state = 'done' WHERE dataset = 'trades'")
        result = run_cli("status", "--dsn", new_db)
        assert result.returncode == 0, result.stderr
        assert re.search(r"trades\.perpetual +1 2024-03-01 11:59:30Z", result.stdout), result.stdout
        conn.execute("SELECT pg_advisory_unlock(1685222515, 1)")
