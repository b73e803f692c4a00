"""`deribit-ts export`: a view round-trips exactly through Parquet, CSV and JSON lines; --sql is one read-only
SELECT (DML, two statements, writing CTEs and side-effect functions refused in one line, exit 2, no file);
--where is one condition; whatever the checks let through runs READ ONLY."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta

import cli_inprocess
import psycopg
import pyarrow.parquet as pq
import pytest

from deribit_ts.export import _umask, arrow_table

invoke = cli_inprocess.invoke  # the fixture

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
# Values that a rounding writer would change: binary fractions, extremes, subnormals, long mantissas.
AWKWARD = [0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308, 123456.78901234567, -0.0, 2.0 / 3.0, 1e22]
QUERY = "SELECT instrument_name, ts, open, high, low, close, volume, cost FROM deribit.ohlcv_1m"


@pytest.fixture(scope="module")
def dsn(db):
    with psycopg.connect(db, autocommit=True) as conn:
        for name in ("BTC-PERPETUAL", "ETH-PERPETUAL"):
            conn.execute(
                """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, raw)
                   VALUES (%s, 'future', true, %s, '{}')""",
                (name, name[:3]),
            )
        for n, value in enumerate(AWKWARD):
            for name in ("BTC-PERPETUAL", "ETH-PERPETUAL"):
                conn.execute(
                    """INSERT INTO deribit.candles_1m SELECT id, %s, %s, %s, %s, %s, %s, %s FROM deribit.instruments
                        WHERE instrument_name = %s""",
                    (T0 + timedelta(minutes=n), value, value * 3, value / 7, -value, n + 0.5, value * 1e-3, name),
                )
    return db


def _expected(dsn: str, where: str = "true") -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return sorted(conn.execute(f"{QUERY} WHERE {where}").fetchall())


def _same(got: list[tuple], want: list[tuple]) -> None:
    """Equal value for value, -0.0 kept apart from 0.0."""
    assert got == want
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float):
                assert math.copysign(1, a) == math.copysign(1, b)


def _run(invoke, dsn: str, *args: str):
    return invoke(["export", "--dsn", dsn, *args], 60)


def test_parquet_round_trips_a_view_exactly(invoke, dsn, tmp_path) -> None:
    out = tmp_path / "m.parquet"
    result = _run(invoke, dsn, "ohlcv_1m", "--format", "parquet", "--out", str(out))
    assert result.code == 0, result.err
    assert "16 rows" in result.out
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not the temporary file's private mode
    table = pq.read_table(out)
    assert table.schema.field("ts").type.tz == "UTC"
    got = sorted(tuple(r.values()) for r in table.to_pylist())
    _same(got, _expected(dsn))


def test_csv_round_trips_a_view_exactly(invoke, dsn, tmp_path) -> None:
    out = tmp_path / "m.csv"
    result = _run(invoke, dsn, "ohlcv_1m", "--format", "csv", "--out", str(out))
    assert result.code == 0, result.err
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["instrument_name", "ts", "open", "high", "low", "close", "volume", "cost"]
    got = sorted((r[0], datetime.fromisoformat(r[1]), *map(float, r[2:])) for r in rows[1:])
    _same(got, _expected(dsn))


def test_jsonl_round_trips_a_view_exactly_with_where_and_since(invoke, dsn, tmp_path) -> None:
    out = tmp_path / "m.jsonl"
    since = (T0 + timedelta(minutes=2)).isoformat()
    until = (T0 + timedelta(minutes=6)).isoformat()
    args = ["ohlcv_1m", "--where", "instrument_name = 'ETH-PERPETUAL'", "--since", since, "--until", until]
    result = _run(invoke, dsn, *args, "--format", "jsonl", "--out", str(out))
    assert result.code == 0, result.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    got = sorted((r["instrument_name"], datetime.fromisoformat(r["ts"]), *list(r.values())[2:]) for r in records)
    want = _expected(
        dsn, f"instrument_name = 'ETH-PERPETUAL' AND ts >= '{since}' AND ts < '{until}'"
    )  # four minutes of one instrument
    assert len(want) == 4
    _same(got, want)


def test_sql_qualifies_bare_public_views_and_keeps_nulls(dsn) -> None:
    table = arrow_table(
        dsn,
        sql="with c as (select instrument_name, volume from ohlcv_1m) "
        "select instrument_name, max(volume) as top, null::float8 as nothing from c group by 1 order by 1",
    )
    assert table.to_pylist() == [
        {"instrument_name": "BTC-PERPETUAL", "top": 7.5, "nothing": None},
        {"instrument_name": "ETH-PERPETUAL", "top": 7.5, "nothing": None},
    ]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--sql", "delete from deribit.candles_1m"], "must be a SELECT"),
        (["--sql", "update candles_1m set close = 0"], "must be a SELECT"),
        (["--sql", "select 1; select 2"], "exactly one SELECT"),
        (["--sql", "select 1; delete from deribit.candles_1m"], "exactly one SELECT"),
        (["--sql", "with d as (delete from deribit.candles_1m returning *) select * from d"], "DELETE"),
        (["--sql", "select * into stolen from ohlcv_1m"], "INTO"),
        (["--sql", "select * from ohlcv_1m for update"], "LOCK"),
        (["--sql", "select pg_terminate_backend(1)"], "pg_terminate_backend"),
        (["ohlcv_1m", "--where", "true; delete from deribit.candles_1m"], "--where"),
        (["ohlcv_1m", "--where", "true) union (select 1"], "--where"),
        (["ohlcv_1m", "--where", "true order by 1"], "--where"),
        (["ohlcv_1m", "--where", "(select count(*) from (delete from x returning 1) d) > 0"], "--where"),
        (["no_such_view"], "not a view of schema deribit"),
        (["ohlcv_1m", "--sql", "select 1"], "exactly one"),
        (["ohlcv_1m", "--format", "xlsx"], "--format"),
    ],
)
def test_refusals_are_one_line_exit_2_and_write_nothing(invoke, dsn, tmp_path, args, words) -> None:
    out = tmp_path / "x.parquet"
    result = _run(invoke, dsn, *args, "--out", str(out))
    assert result.code == 2, result.err
    assert words in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM deribit.candles_1m").fetchone() == (16,)


def test_what_the_checks_let_through_still_runs_read_only(invoke, dsn, tmp_path) -> None:
    # nextval() writes (a sequence) yet parses as a plain SELECT: the READ ONLY transaction refuses it
    result = _run(invoke, dsn, "--sql", "select nextval('deribit.instruments_id_seq')", "--out", str(tmp_path / "x"))
    assert result.code == 2
    assert "read-only transaction" in result.err
    assert list(tmp_path.iterdir()) == []
