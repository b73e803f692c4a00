"""deribit.basis_term_structure kept by the refresh (deribit_ts.basis_ts_hourly, migration 0048): before and after
every refresh, and after a late re-load of a past day, the view's rows equal the term structure computed on read
from the hourly bars and the index (the view's definition before it was kept), with exact expected rows.

`scenario(dsn)` runs on either edition (tests/tsl/test_tsl_basis_term_structure.py runs it on the Community one).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from test_basis_funding import EXPIRY, INSTRUMENTS, WEEKLY_EXPIRY, candle, funding, index, t, term_row

COLUMNS = """currency, ts, expiry, days_to_expiry, annualized_basis_pct, instrument_name, future_price, index_price,
             basis_pct, index_source"""
VIEW = f"SELECT {COLUMNS} FROM deribit.basis_term_structure ORDER BY ts, instrument_name"
# The term structure computed on read from its sources, as the view was defined before it was kept.
ON_READ = f"""
SELECT {COLUMNS} FROM (
SELECT f.currency, h.ts, f.expiry,
       extract(epoch FROM f.expiry - h.ts)::double precision / 86400 AS days_to_expiry,
       CASE WHEN f.expiry - h.ts >= interval '1 day'
            THEN 100 * (b.close / h.price - 1) * 365 / (extract(epoch FROM f.expiry - h.ts)::double precision / 86400)
       END AS annualized_basis_pct,
       f.instrument_name, b.close AS future_price, h.price AS index_price, 100 * (b.close / h.price - 1) AS basis_pct,
       CASE h.source WHEN 1 THEN 'index' ELSE 'funding_index' END AS index_source
FROM deribit_ts.dated_futures f
JOIN deribit.candles_1h b ON b.instrument_id = f.id
                         AND b.ts >= f.listed - interval '1 hour' AND b.ts < f.expiry - interval '1 hour'
JOIN (
    SELECT s.index_name, s.ts, (array_agg(s.price ORDER BY s.source, s.perpetual))[1] AS price, min(s.source) AS source
      FROM (
        SELECT x.index_name, x.ts, x.price, 1 AS source, 0 AS perpetual
          FROM deribit.index_price_history x WHERE x.ts = date_trunc('hour', x.ts)
        UNION ALL
        SELECT p.price_index, fr.ts, fr.index_price, 2, p.id
          FROM deribit.funding_rate_history fr JOIN deribit.instruments p ON p.id = fr.instrument_id
         WHERE p.is_perpetual AND fr.index_price > 0 AND fr.ts = date_trunc('hour', fr.ts)
      ) s
     GROUP BY s.index_name, s.ts
) h ON h.index_name = f.price_index AND h.ts = b.ts + interval '1 hour') o
ORDER BY ts, instrument_name"""


def plant_market(conn) -> None:
    for name, perpetual, currency, settlement, price_index, created, expiry in INSTRUMENTS:
        conn.execute(
            """INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency,
                            settlement_currency, price_index, creation_ts, expiry, raw)
                        VALUES (%s, 'future', %s, %s, %s, %s, %s, %s, '{}')""",
            (name, perpetual, currency, settlement, price_index, created, expiry),
        )
    for hour, spot in (("2024-03-20 10:00", 65000.0), ("2024-03-20 11:00", 65100.0), ("2024-03-20 12:00", 65200.0)):
        funding(conn, t(hour), 2e-6, spot)
    index(conn, t("2024-03-20 12:00"), 65210.0, resolution="1 hour")  # the index history wins on the hour
    candle(conn, "BTC-22MAR24", t("2024-03-20 08:10"), 64900.0)  # 09:00 has no index (yet)
    candle(conn, "BTC-22MAR24", t("2024-03-20 09:59"), 65010.0)  # closes at 10:00
    candle(conn, "BTC-22MAR24", t("2024-03-20 10:30"), 65050.0)  # 11:00 has no candle on the hour
    candle(conn, "BTC-29MAR24", t("2024-03-20 11:00"), 65180.0)
    candle(conn, "BTC-29MAR24", t("2024-03-20 11:45"), 65190.0)  # the last before 12:00
    # the weekly's expiry: 07:00 is its last hour; 08:00, the expiry itself, has no row
    for hour in ("2024-03-22 07:00", "2024-03-22 08:00"):
        funding(conn, t(hour), 2e-6, 66000.0)
    candle(conn, "BTC-22MAR24", t("2024-03-22 06:30"), 66020.0)
    candle(conn, "BTC-22MAR24", t("2024-03-22 07:59"), 66001.0)


def refresh(conn) -> dict:
    summary = conn.execute("CALL deribit_ts.refresh_rollups()").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM deribit_ts.basis_ts_dirty").fetchone()[0] == 0
    return summary


def stored(conn) -> int:
    return conn.execute("SELECT count(*) FROM deribit_ts.basis_ts_hourly").fetchone()[0]


def view_equals_on_read(conn) -> list[tuple]:
    rows = conn.execute(VIEW).fetchall()
    assert rows == conn.execute(ON_READ).fetchall()
    return rows


FIRST = [
    term_row(t("2024-03-20 10:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 65010.0, 65000.0, "funding_index"),
    term_row(t("2024-03-20 11:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 65050.0, 65100.0, "funding_index"),
    term_row(t("2024-03-20 12:00"), "BTC-29MAR24", EXPIRY, 65190.0, 65210.0, "index"),
    term_row(t("2024-03-22 07:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 66020.0, 66000.0, "funding_index"),
]
# after the re-load: 09:00 gains its index, 11:00's bar a later candle, 12:00's bar lost its last one
RELOADED = [
    term_row(t("2024-03-20 09:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 64900.0, 64950.0, "index"),
    term_row(t("2024-03-20 10:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 65010.0, 65000.0, "funding_index"),
    term_row(t("2024-03-20 11:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 65070.0, 65100.0, "funding_index"),
    term_row(t("2024-03-20 12:00"), "BTC-29MAR24", EXPIRY, 65180.0, 65210.0, "index"),
    term_row(t("2024-03-22 07:00"), "BTC-22MAR24", WEEKLY_EXPIRY, 66020.0, 66000.0, "funding_index"),
]


def scenario(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        plant_market(conn)
        assert stored(conn) == 0
        view_equals_on_read(conn)  # nothing stored yet: every marked day computed on read
        summary = refresh(conn)
        assert summary["basis_term_structure"] == {"days": 2, "rows": 4}
        assert stored(conn) == 4
        assert view_equals_on_read(conn) == FIRST  # read from the stored rows
        # a late re-load of 2024-03-20: a new index sample on the hour, a later candle in a bar, a candle removed
        index(conn, t("2024-03-20 09:00"), 64950.0, resolution="1 hour")
        candle(conn, "BTC-22MAR24", t("2024-03-20 10:50"), 65070.0)
        conn.execute(
            "DELETE FROM deribit.candles_1m WHERE ts = %s AND instrument_id = "
            "(SELECT id FROM deribit.instruments WHERE instrument_name = 'BTC-29MAR24')",
            (t("2024-03-20 11:45"),),
        )
        assert conn.execute("SELECT array_agg(DISTINCT day) FROM deribit_ts.basis_ts_dirty").fetchone()[0] == [
            datetime(2024, 3, 20, tzinfo=UTC)
        ]
        view_equals_on_read(conn)  # before the refresh: the re-loaded day computed on read, not the stored rows
        refresh(conn)
        assert stored(conn) == 5
        assert view_equals_on_read(conn) == RELOADED
        assert refresh(conn)["basis_term_structure"] == {"days": 0, "rows": 0}


def test_the_kept_term_structure_equals_the_one_computed_on_read(new_db):
    scenario(new_db)


@pytest.mark.parametrize("clause", ["WHERE currency = 'BTC'", "WHERE currency = 'BTC' AND ts >= '2024-03-20 11:00'"])
def test_filters_reach_the_kept_rows(new_db, clause):
    scenario(new_db)
    with psycopg.connect(new_db) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM deribit.basis_term_structure {clause} ORDER BY ts").fetchall()
    assert rows == [r for r in RELOADED if "ts >=" not in clause or r[1] >= t("2024-03-20 11:00")]
