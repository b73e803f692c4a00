-- The sanity rules' findings, kept: deribit.sanity_violations judged every candle on read (192 s over the
-- simulator's full history), so a report over years could not be asked for. Now `deribit-ts refresh` (and the end
-- of every backfill) judges the candles written since the last refresh and stores what breaks a rule here; the
-- view reads these rows plus the candles newer than the last refresh, judged on read (deribit_ts.refresh_sanity,
-- sql/40_quality.sql).

-- One row per candle and rule broken, for every candle before sanity_state.checked_until.
CREATE TABLE deribit_ts.sanity_found (
    instrument_id integer NOT NULL REFERENCES deribit.instruments (id) ON DELETE CASCADE,
    ts            timestamptz NOT NULL,
    rule          text NOT NULL,
    detail        text NOT NULL,
    PRIMARY KEY (instrument_id, ts, rule)
);
-- a report over one time range, every instrument
CREATE INDEX sanity_found_ts_idx ON deribit_ts.sanity_found (ts);
COMMENT ON TABLE deribit_ts.sanity_found IS
    'The candles that break a sanity rule, judged by the last refresh (every candle before sanity_state.checked_until); read through deribit.sanity_violations';

-- One row: how far the findings reach.
CREATE TABLE deribit_ts.sanity_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    checked_until timestamptz NOT NULL,  -- every candle before it has been judged; newer ones are judged on read
    refreshed_at  timestamptz NOT NULL   -- start of the refresh that judged them (windows fetched since are re-judged)
);
COMMENT ON TABLE deribit_ts.sanity_state IS
    'How far deribit_ts.sanity_found reaches: candles before checked_until were judged by the refresh that began at refreshed_at';
