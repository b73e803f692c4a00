-- Queries of `deribit-ts db size`, `db compress` and `db jobs` (deribit_ts/db/storage.py).

-- name: report
-- One row per hypertable: rows, bytes, bytes per row, chunks, compressed chunks, compression ratio.
SELECT * FROM deribit_ts.storage_report();

-- name: compress_due
-- Compress the chunks the columnstore policies would compress now (Community edition).
CALL deribit_ts.compress_due(NULL);

-- name: jobs
-- Timescale's background jobs with their last run and status.
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
 ORDER BY j.job_id;
