"""deribit.funding_apr kept by the refresh (deribit_ts.funding_apr_kept, migration 0051): before and after every
refresh, and after a late re-load and a deleted hour in the past, the view's rows equal the trailing means computed
on read (the view's definition before they were kept), with exact expected rows.

`scenario(dsn)` runs on either edition (tests/tsl/test_tsl_funding_apr.py runs it on the Community one).
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from test_basis_funding import funding, t

COLUMNS = "instrument_name, ts, apr, apr_1d, apr_7d, hours_1d, hours_7d"
VIEW = f"SELECT {COLUMNS} FROM deribit.funding_apr ORDER BY instrument_name, ts"
# The means computed on read from the funding history, as the view was defined before they were kept.
ON_READ = f"""
SELECT {COLUMNS} FROM (
SELECT i.instrument_name, f.ts, f.interest_1h * 24 * 365 * 100 AS apr, w.mean_1d * 24 * 365 * 100 AS apr_1d,
       w.mean_7d * 24 * 365 * 100 AS apr_7d, w.hours_1d, w.hours_7d
FROM deribit.funding_rate_history f
JOIN deribit.instruments i ON i.id = f.instrument_id
CROSS JOIN LATERAL (
    SELECT avg(p.interest_1h) FILTER (WHERE p.ts > f.ts - interval '24 hours') AS mean_1d,
           avg(p.interest_1h) AS mean_7d,
           count(p.interest_1h) FILTER (WHERE p.ts > f.ts - interval '24 hours') AS hours_1d,
           count(p.interest_1h) AS hours_7d
      FROM deribit.funding_rate_history p
     WHERE p.instrument_id = f.instrument_id AND p.ts > f.ts - interval '168 hours' AND p.ts <= f.ts) w) o
ORDER BY instrument_name, ts"""
START = t("2024-01-01 00:00")
YEAR = 24 * 365 * 100


def approx_rows(rows: list[tuple]) -> list[tuple]:
    return [tuple(pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for v in r) for r in rows]


def view_equals_on_read(conn) -> list[tuple]:
    rows = conn.execute(VIEW).fetchall()
    assert rows == approx_rows(conn.execute(ON_READ).fetchall())
    return rows


def plant(conn) -> None:
    for name, currency in (("ETH-PERPETUAL", "ETH"), ("BTC-PERPETUAL", "BTC")):
        conn.execute(
            "INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, price_index, raw) "
            "VALUES (%s, 'future', true, %s, %s, '{}')",
            (name, currency, currency.lower() + "_usd"),
        )
    # 200 hours of ETH at 1e-5 an hour with hour 190 missing (an outage), then one hour at 5e-5; BTC's 30 hours.
    for h in range(200):
        if h != 190:
            funding(conn, START + timedelta(hours=h), 1e-5, 2000.0, name="ETH-PERPETUAL")
    funding(conn, START + timedelta(hours=200), 5e-5, 2000.0, name="ETH-PERPETUAL")
    for h in range(30):
        funding(conn, START + timedelta(hours=h), 2e-5 * (h % 3), 40000.0, name="BTC-PERPETUAL")


def refresh(conn) -> dict:
    summary = conn.execute("CALL deribit_ts.refresh_rollups()").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM deribit_ts.funding_apr_dirty").fetchone()[0] == 0
    return summary


def stored(conn) -> int:
    return conn.execute("SELECT count(*) FROM deribit_ts.funding_apr_kept").fetchone()[0]


def eth(conn, since_hour: int) -> list[tuple]:
    return conn.execute(
        "SELECT ts, apr, apr_1d, apr_7d, hours_1d, hours_7d FROM deribit.funding_apr "
        "WHERE instrument_name = 'ETH-PERPETUAL' AND ts >= %s ORDER BY ts",
        (START + timedelta(hours=since_hour),),
    ).fetchall()


LAST_TWO = [
    (START + timedelta(hours=199), pytest.approx(8.76), pytest.approx(8.76), pytest.approx(8.76), 23, 167),
    (
        START + timedelta(hours=200),
        pytest.approx(5e-5 * YEAR),
        pytest.approx((22 * 1e-5 + 5e-5) / 23 * YEAR),
        pytest.approx((166 * 1e-5 + 5e-5) / 167 * YEAR),
        23,
        167,
    ),
]
# after hour 190 arrives late (at 3e-5) and hour 180 is deleted
RELOADED_LAST = (
    START + timedelta(hours=200),
    pytest.approx(5e-5 * YEAR),
    pytest.approx((21 * 1e-5 + 3e-5 + 5e-5) / 23 * YEAR),
    pytest.approx((165 * 1e-5 + 3e-5 + 5e-5) / 167 * YEAR),
    23,
    167,
)


def scenario(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        plant(conn)
        assert stored(conn) == 0
        view_equals_on_read(conn)  # nothing stored yet: every marked day computed on read
        assert eth(conn, 199) == LAST_TWO
        summary = refresh(conn)
        assert summary["funding_apr"] == {"days": 16, "rows": 230}  # 9 days of history and the 7 after them
        assert stored(conn) == 230
        assert view_equals_on_read(conn)[0] == ("BTC-PERPETUAL", START, 0.0, 0.0, 0.0, 1, 1)
        assert eth(conn, 199) == LAST_TWO  # read from the stored rows
        # a late re-load: hour 190 arrives, hour 180 is deleted
        funding(conn, START + timedelta(hours=190), 3e-5, 2000.0, name="ETH-PERPETUAL")
        conn.execute(
            "DELETE FROM deribit.funding_rate_history WHERE ts = %s AND instrument_id = "
            "(SELECT id FROM deribit.instruments WHERE instrument_name = 'ETH-PERPETUAL')",
            (START + timedelta(hours=180),),
        )
        view_equals_on_read(conn)  # before the refresh: the marked days computed on read, not the stored rows
        assert eth(conn, 200) == [RELOADED_LAST]
        summary = refresh(conn)
        assert summary["funding_apr"] == {"days": 8, "rows": 32}  # January 8-15: ETH's hours 168-200 but one
        assert stored(conn) == 230
        view_equals_on_read(conn)
        assert eth(conn, 200) == [RELOADED_LAST]
        assert refresh(conn)["funding_apr"] == {"days": 0, "rows": 0}


def test_the_kept_funding_means_equal_the_ones_computed_on_read(new_db):
    scenario(new_db)


def test_a_bounded_read_of_the_kept_rows_reads_only_its_rows(new_db):
    """The view's filter reaches the kept table's primary key: 24 rows read for a day, not the history."""
    scenario(new_db)
    with psycopg.connect(new_db) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF) SELECT * FROM deribit.funding_apr "
            "WHERE instrument_name = 'ETH-PERPETUAL' AND ts >= %s AND ts < %s",
            (START + timedelta(days=2), START + timedelta(days=3)),
        ).fetchone()[0]

    def scanned(node: dict) -> list[tuple[str, int]]:
        here = [(node.get("Relation Name", ""), node.get("Actual Rows", 0) * node.get("Actual Loops", 1))]
        return here + [s for child in node.get("Plans", []) for s in scanned(child)]

    reads = dict((name, rows) for name, rows in scanned(plan[0]["Plan"]) if name)
    assert reads["funding_apr_kept"] == 24
    history = [rows for name, rows in reads.items() if name.startswith("_hyper") or name == "funding_rate_history"]
    assert all(rows <= 24 for rows in history)
