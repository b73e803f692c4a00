-- Which loaded candles the continuous aggregates already include.
--
-- The refresh policies of 0006 only look back a few days, so history a backfill loads must be refreshed
-- explicitly. A run that is killed or interrupted never reaches its own refresh; `rolled_up_at` records
-- what has been refreshed, so the next run refreshes everything loaded and not yet rolled up, whichever run
-- loaded it (deribit_ts/ingest/rollups.py). Rows that exist before this migration are left NULL: the first
-- refresh after it covers the whole loaded history once, which also repairs runs interrupted earlier. On
-- the Apache edition nothing is refreshed and the column stays NULL, so a server that later gains the
-- Community license materializes that history on its first run.
ALTER TABLE deribit_ts.coverage
    ADD COLUMN coverage_id bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN rolled_up_at timestamptz;
-- The identity lets a refresh mark exactly the rows it read before refreshing: a row committed while the
-- refresh ran is left for the next one.
ALTER TABLE deribit_ts.coverage ADD PRIMARY KEY (coverage_id);
-- Keeps the per-run check cheap however much history is already rolled up.
CREATE INDEX coverage_rollup_pending_idx ON deribit_ts.coverage (coverage_id)
    WHERE dataset = 'candles' AND rows > 0 AND rolled_up_at IS NULL;
COMMENT ON COLUMN deribit_ts.coverage.rolled_up_at IS
    'When the continuous aggregates were refreshed over this range (candles only; NULL: not yet, or Apache edition)';
