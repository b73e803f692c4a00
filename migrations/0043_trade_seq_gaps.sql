-- Where an instrument's stored trade numbers jump: one row per pair of trades, consecutive among the stored ones,
-- whose trade_seq are not consecutive. Kept by whatever writes trades, in the same transaction
-- (deribit_ts.refresh_trade_seq_gaps over the time range written), so deribit.gap_report reads a few rows per
-- instrument instead of numbering every stored trade on each read (a year of option trades is tens of millions).
-- Whether a jump is a hole (both trades inside one settled stretch of the trades' coverage) is decided on read:
-- coverage grows after the trades are written.
CREATE TABLE deribit_ts.trade_seq_gaps (
    instrument_name text NOT NULL,
    trade_seq       bigint NOT NULL,       -- the later trade of the pair
    ts              timestamptz NOT NULL,
    prev_seq        bigint NOT NULL,       -- the stored trade before it (by trade_seq)
    prev_ts         timestamptz NOT NULL,
    PRIMARY KEY (instrument_name, trade_seq)
);

-- The collector writes trades (and so these rows) too: fenced like its other tables (0026).
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.trade_seq_gaps
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();

-- The jumps among the trades stored before this migration: one pass over the tape, once.
INSERT INTO deribit_ts.trade_seq_gaps (instrument_name, trade_seq, ts, prev_seq, prev_ts)
SELECT s.instrument_name, s.trade_seq, s.ts, s.prev_seq, s.prev_ts
  FROM (SELECT t.instrument_name, t.trade_seq, t.ts,
               lag(t.trade_seq) OVER w AS prev_seq, lag(t.ts) OVER w AS prev_ts
          FROM deribit.trades t
        WINDOW w AS (PARTITION BY t.instrument_name ORDER BY t.trade_seq)) s
 WHERE s.trade_seq > s.prev_seq + 1
ON CONFLICT DO NOTHING;
