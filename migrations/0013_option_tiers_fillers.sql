-- Options backfill: urgency order of tasks, and the bookkeeping of option filler candles.

-- A task's due time: the expiry of its key (NULL: none, e.g. perpetuals, indexes). The claim order is
-- priority, then due, so within one urgency tier the instrument expiring soonest (or expired longest ago, whose
-- data the exchange is closest to dropping) is fetched first.
ALTER TABLE deribit_ts.tasks ADD COLUMN due timestamptz;
DROP INDEX deribit_ts.tasks_claim_idx;
CREATE INDEX tasks_claim_idx ON deribit_ts.tasks (priority, due, range_start DESC, task_id)
    WHERE state IN ('pending', 'running');
COMMENT ON COLUMN deribit_ts.tasks.due IS 'Expiry of the task''s instrument (NULL: none); orders tasks within one priority';

-- Options trade rarely and the chart endpoint fills every untraded minute with a zero-volume candle at the last
-- close. Those fillers are not stored as candles (README "Option candles and fillers": measured ~50x the bytes of
-- the traded candles); the minutes the exchange answered with one are recorded here per fetched window instead,
-- so a minute tells "traded" (a candle row), "filler" (in `filled`), "exchange had nothing" (fetched, neither)
-- and "never fetched" (no coverage) apart, and a filler is rebuilt exactly as the last traded close.
ALTER TABLE deribit_ts.coverage ADD COLUMN filled tstzmultirange;
COMMENT ON COLUMN deribit_ts.coverage.filled IS
    'Minutes of this window the exchange answered with zero-volume filler candles, not stored as rows (options); NULL: none recorded';
