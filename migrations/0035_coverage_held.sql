-- What each coverage record holds, kept beside it: its first and last stored row, the minutes it holds as option
-- fillers, and the steps the exchange answered with nothing. deribit.coverage and deribit.gap_report then read a
-- key's history from its bookkeeping rows (a few per 5,000 candles) instead of probing the hypertables key by key
-- (37 s and 89 s at 51 million candles). The values are derived from the table when a record is written
-- (deribit_ts.coverage_derive, sql/20_backfill.sql), which also derives the records already here.
ALTER TABLE deribit_ts.coverage
    ADD COLUMN first_row timestamptz,
    ADD COLUMN last_row timestamptz,
    ADD COLUMN filled_minutes integer,
    ADD COLUMN empty tstzmultirange;
COMMENT ON COLUMN deribit_ts.coverage.first_row IS 'The first stored row inside this window (NULL: none, or a dataset without rows per key)';
COMMENT ON COLUMN deribit_ts.coverage.last_row IS 'The last stored row inside this window';
COMMENT ON COLUMN deribit_ts.coverage.filled_minutes IS 'Minutes of `filled`: answered with filler candles, held though not stored (NULL: not derived yet)';
COMMENT ON COLUMN deribit_ts.coverage.empty IS
    'Steps (minutes for candles, hours for funding) of this window with neither a stored row nor a filler: the exchange answered nothing there; NULL: none';
