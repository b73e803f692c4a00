"""Storage and background jobs: what `db size`, `db compress` and `db jobs` report (the work is SQL in
sql/30_rollups.sql and Timescale's own views)."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from deribit_ts.db.connect import server_info
from deribit_ts.db.queries import query

# Apache has no scheduler: say what keeps the rollups current there instead (docs/operations.md, "Rollups").
APACHE_SCHEDULER_NOTE = (
    "TimescaleDB Apache edition: no background jobs. The rollups are refreshed by the collector (every 5 minutes), "
    "at the end of every backfill, and by `deribit-ts refresh` (deploy/deribit-ts-refresh.timer runs it every "
    "10 minutes where no collector runs); there is no compression on this edition."
)


def has_tsl(conn: psycopg.Connection) -> bool:
    return server_info(conn).has_tsl


def storage_report(conn: psycopg.Connection) -> list[dict]:
    """One row per hypertable: rows, total_bytes, bytes_per_row, chunks, compressed_chunks, compression_ratio..."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("storage", "report")).fetchall()
    for row in rows:  # numeric -> float for JSON
        for key in ("bytes_per_row", "compression_ratio"):
            row[key] = float(row[key]) if row[key] is not None else None
    return rows


def compress_due(conn: psycopg.Connection) -> dict:
    """Run the columnstore policies now (Community edition; autocommit connection)."""
    return dict(conn.execute(query("storage", "compress_due")).fetchone()[0])


def jobs(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query("storage", "jobs")).fetchall()
