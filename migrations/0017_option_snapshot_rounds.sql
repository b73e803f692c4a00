-- Option snapshots are taken in rounds (deribit-ts snapshot options): every row of a round shares one `ts`, the
-- exchange's time when the round started, so a smile or a term structure is read at one instant. Each quote
-- keeps its own exchange timestamp too, and where its greeks came from.
ALTER TABLE deribit.option_ticker_snapshots ADD COLUMN quote_ts timestamptz;
ALTER TABLE deribit.option_ticker_snapshots ADD COLUMN greeks_source text;

COMMENT ON COLUMN deribit.option_ticker_snapshots.ts IS
    'The snapshot round''s exchange time (public/get_time at its start), shared by every option of the round';
COMMENT ON COLUMN deribit.option_ticker_snapshots.quote_ts IS
    'The quote''s own exchange timestamp (ticker `timestamp`, or the book summary''s `creation_timestamp`)';
COMMENT ON COLUMN deribit.option_ticker_snapshots.greeks_source IS
    'ticker = the exchange''s greeks and bid/ask IVs; sql = greeks from deribit.black76_greeks on the mark IV (--bulk-only)';


-- One row per currency of a snapshot round, written in the round's transaction: the views find the latest round
-- (and walk rounds newest first) here instead of scanning the snapshots for distinct instants.
CREATE TABLE deribit_ts.snapshot_rounds (
    currency     text NOT NULL,
    ts           timestamptz NOT NULL,               -- = option_ticker_snapshots.ts of the round's rows
    options      integer NOT NULL,                   -- rows written for this currency
    bulk_only    boolean NOT NULL,                   -- true: greeks from SQL, no tickers asked
    run_id       bigint REFERENCES deribit_ts.runs (run_id) ON DELETE SET NULL,
    taken_at     timestamptz NOT NULL DEFAULT now(), -- our wall clock at commit
    seconds      double precision,                   -- how long the round took (requests included)
    PRIMARY KEY (currency, ts)
);
CREATE INDEX snapshot_rounds_ts_idx ON deribit_ts.snapshot_rounds (ts DESC);
COMMENT ON TABLE deribit_ts.snapshot_rounds IS 'Option snapshot rounds per currency (deribit-ts snapshot options)';
