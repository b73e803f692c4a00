-- Queries of the trade tape (deribit_ts/ingest/trades.py). Its staging table and COPY are load.sql's.

-- name: stored_ids
-- The trade_ids of %(instrument)s already stored in [%(start)s, %(end)s).
SELECT trade_id FROM deribit.trades WHERE instrument_name = %(instrument)s AND ts >= %(start)s AND ts < %(end)s;

-- name: insert_missing
-- The staged trades whose key is not stored yet; (instrument, ts) of each new one. {staging} is the session's
-- staging table of deribit.trades (load.sql's, LIKE the table: its columns are the table's, in order).
INSERT INTO deribit.trades SELECT * FROM {staging}
    ON CONFLICT (instrument_name, ts, trade_id) DO NOTHING
RETURNING instrument_name, ts;

-- name: refresh_seq_gaps
-- Recompute the jumps in trade_seq of %(instrument)s in [%(start)s, %(end)s) (deribit_ts.trade_seq_gaps, what
-- gap_report reads); in the transaction that wrote the trades.
SELECT deribit_ts.refresh_trade_seq_gaps(%(instrument)s, %(start)s, %(end)s);

-- name: refresh_days
-- Recompute the daily sums of option %(instrument)s's trades in [%(start)s, %(end)s) (deribit_ts.trade_days, what
-- the daily smile and flow read).
SELECT deribit_ts.refresh_trade_days(%(instrument)s, %(start)s, %(end)s);

-- name: open_tasks
-- The open trades tasks of the instruments %(keys)s: key and the milliseconds of range left to fetch.
SELECT key, extract(epoch FROM range_end - coalesce(cursor, range_start)) * 1000
  FROM deribit_ts.tasks
 WHERE dataset = 'trades' AND state IN ('pending', 'running') AND key = ANY(%(keys)s);
