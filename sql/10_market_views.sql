-- Stable public views: the names and columns researchers and later work rely on. Every `ts` is a
-- timestamptz; a candle is keyed by the minute (hour, day) it opens. New columns are only ever added
-- at the end.
--
-- This file is re-applied whenever it (or any migration) changes, after every migration has run. Users build
-- their own views and grants on these, so every object here is replaced in place (CREATE OR REPLACE), never
-- dropped: a view keeps its columns' names, order and types, and new columns go at the end.
-- Every view's and column's COMMENT (unit, convention, what a row is) is in 90_comments.sql.
CREATE OR REPLACE VIEW deribit.ohlcv_1m AS
SELECT i.instrument_name, c.ts, c.open, c.high, c.low, c.close, c.volume, c.cost
FROM deribit.candles_1m c
JOIN deribit.instruments i ON i.id = c.instrument_id;

-- deribit.ohlcv_5m/15m/1h/1d (the rollups) are defined in 30_rollups.sql, after the edition's rollup relations.

CREATE OR REPLACE VIEW deribit.funding_rates AS
SELECT i.instrument_name, f.ts, f.interest_1h, f.interest_8h, f.index_price, f.prev_index_price
FROM deribit.funding_rate_history f
JOIN deribit.instruments i ON i.id = f.instrument_id;

CREATE OR REPLACE VIEW deribit.index_prices AS
SELECT p.index_name, p.ts, p.price, p.resolution
FROM deribit.index_price_history p;

CREATE OR REPLACE VIEW deribit.option_snapshots AS
SELECT i.instrument_name, s.ts, s.underlying_price, s.mark_price, s.mark_iv, s.bid_iv, s.ask_iv,
       s.delta, s.gamma, s.vega, s.theta, s.rho, s.open_interest,
       s.underlying_index, s.index_price, s.best_bid_price, s.best_ask_price, s.interest_rate,
       i.expiry, i.strike, i.option_type, s.quote_ts, s.greeks_source
FROM deribit.option_ticker_snapshots s
JOIN deribit.instruments i ON i.id = s.instrument_id;
