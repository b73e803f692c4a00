-- The run log, deribit_ts.runs (deribit_ts/ingest/runlog.py): a row per invocation that does work.

-- name: start
-- A run of %(command)s begins on %(host)s (process %(pid)s); returns its run_id.
INSERT INTO deribit_ts.runs (command, arguments, host, pid)
VALUES (%(command)s, %(arguments)s, %(host)s, %(pid)s)
RETURNING run_id;

-- name: traffic
-- The exchange traffic of run %(run_id)s so far.
UPDATE deribit_ts.runs SET requests = %(requests)s, retries = %(retries)s, throttled = %(throttled)s,
                           errors = %(errors)s
 WHERE run_id = %(run_id)s;

-- name: finish
-- Run %(run_id)s ends with %(status)s (and %(error)s), with its final traffic.
UPDATE deribit_ts.runs SET finished_at = now(), status = %(status)s, error = %(error)s, requests = %(requests)s,
                           retries = %(retries)s, throttled = %(throttled)s, errors = %(errors)s
 WHERE run_id = %(run_id)s;
