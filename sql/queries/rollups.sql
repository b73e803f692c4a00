-- Bringing the rollups up to date (deribit_ts/ingest/rollups.py).

-- name: refresh
-- Every rollup over what changed (every day with %(full)s, Apache); returns the summary as JSON.
CALL deribit_ts.refresh_rollups(%(full)s, NULL);
