"""Storage and background jobs: what `db size`, `db compress` and `db jobs` report (the work is SQL in
sql/30_rollups.sql and Timescale's own views)."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from deribit_ts.db.connect import server_info

# Apache has no scheduler: say what keeps the rollups current there instead (README, "Rollups").
APACHE_SCHEDULER_NOTE = (
    "TimescaleDB Apache edition: no background jobs. The rollups are refreshed by the collector (every 5 minutes), "
    "at the end of every backfill, and by `deribit-ts refresh` (deploy/deribit-ts-refresh.timer runs it every "
    "10 minutes where no collector runs); there is no compression on this edition."
)

_JOBS = """
SELECT j.job_id, j.application_name, j.proc_schema || '.' || j.proc_name AS proc,
       CASE WHEN j.hypertable_name IS NOT NULL THEN j.hypertable_schema || '.' || j.hypertable_name END AS target,
       j.schedule_interval::text AS schedule_interval, j.scheduled,
       -- Timescale says -infinity for "never"
       CASE WHEN isfinite(s.last_run_started_at) THEN s.last_run_started_at END AS last_run_started_at,
       s.last_run_status,
       CASE WHEN isfinite(s.last_successful_finish) THEN s.last_successful_finish END AS last_successful_finish,
       CASE WHEN isfinite(s.next_start) THEN s.next_start END AS next_start, s.total_runs,
       s.total_failures
  FROM timescaledb_information.jobs j
  LEFT JOIN timescaledb_information.job_stats s USING (job_id)
 ORDER BY j.job_id
"""


def has_tsl(conn: psycopg.Connection) -> bool:
    return server_info(conn).has_tsl


def storage_report(conn: psycopg.Connection) -> list[dict]:
    """One row per hypertable: rows, total_bytes, bytes_per_row, chunks, compressed_chunks, compression_ratio..."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM deribit_ts.storage_report()").fetchall()
    for row in rows:  # numeric -> float for JSON
        for key in ("bytes_per_row", "compression_ratio"):
            row[key] = float(row[key]) if row[key] is not None else None
    return rows


def compress_due(conn: psycopg.Connection) -> dict:
    """Run the columnstore policies now (Community edition; autocommit connection)."""
    return dict(conn.execute("CALL deribit_ts.compress_due(NULL)").fetchone()[0])


def jobs(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_JOBS).fetchall()
