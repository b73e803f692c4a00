"""The quality views on the Community edition, over compressed (columnstore) chunks: the same planted gaps and
sanity violations as on Apache (tests/test_quality.py), read back through decompression."""

from __future__ import annotations

import psycopg
import pytest
from test_quality import GAP_ROWS, GAPS, SANITY, SANITY_ROWS, plant

pytestmark = pytest.mark.tsl


def test_gap_report_and_sanity_read_compressed_chunks_alike(tsl_migrated) -> None:
    plant(tsl_migrated)
    with psycopg.connect(tsl_migrated, autocommit=True) as conn:
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('deribit.candles_1m') AS c")
        compressed = conn.execute(
            "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks "
            "WHERE hypertable_schema = 'deribit' AND hypertable_name = 'candles_1m'"
        ).fetchone()[0]
        gaps = conn.execute(GAPS).fetchall()
        sanity = conn.execute(SANITY).fetchall()
    assert compressed
    assert gaps == GAP_ROWS
    assert sanity == SANITY_ROWS
    # kept by the refresh (the daily continuous aggregate gives the days' aggregates): the same rows, stored
    with psycopg.connect(tsl_migrated, autocommit=True) as conn:
        first = conn.execute("SELECT deribit_ts.refresh_sanity()").fetchone()[0]
        stored = conn.execute(SANITY).fetchall()
        again = conn.execute("SELECT deribit_ts.refresh_sanity()").fetchone()[0]
        days = conn.execute("SELECT count(*) FROM deribit_ts.sanity_days").fetchone()[0]
    assert first["full"] and not again["full"] and again["days_changed"] == 0
    assert stored == SANITY_ROWS and days > 0
