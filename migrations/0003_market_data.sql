-- Market-data hypertables. Each has a primary key on its natural key, so loading the same data twice
-- changes nothing (loaders upsert on it).
--
-- Types: double precision everywhere a price, size or greek is stored. Deribit sends JSON numbers that
-- are IEEE-754 doubles, so float8 round-trips every value exactly and can never overflow (the system
-- this replaces used NUMERIC(8,6) and overflowed on greeks such as vega or gamma of deep options).
--
-- Chunk intervals (../shared/timescale.md 2.1): memory is not the constraint at these volumes (one
-- instrument is 1,440 candles a day, about 230 kB), compression batch fill is: compressed batches hold
-- up to 1,000 rows per segment, so a chunk should hold well over 1,000 rows per instrument.
--   candles_1m         7 days  -> 10,080 rows per always-trading instrument, ~10 full batches
--   funding_rates      1 year  -> hourly rows, 8,760 per perpetual per chunk
--   index_prices       30 days -> up to 43,200 minute rows per index; coarse history is much sparser
--   option_snapshots   7 days  -> sampled snapshots of many options; sized like candles

-- No foreign key on candles_1m: it is the bulk-load hot path and the loader only writes ids it has
-- just resolved from deribit.instruments; the check would cost an index probe per row.
CREATE TABLE deribit.candles_1m (
    instrument_id integer NOT NULL,
    ts            timestamptz NOT NULL,      -- the minute the candle opens
    open          double precision NOT NULL,
    high          double precision NOT NULL,
    low           double precision NOT NULL,
    close         double precision NOT NULL,
    volume        double precision NOT NULL, -- base currency (Deribit's `volume`)
    cost          double precision NOT NULL, -- quote currency, USD for inverse instruments (Deribit's `cost`)
    PRIMARY KEY (instrument_id, ts)
);
-- No default (ts DESC) index: the primary key serves per-instrument ranges, chunk exclusion serves scans
-- across instruments by time, and the extra index costs a third of the load time (measured with COPY:
-- 2.65 us/row with it, 1.75 us/row without).
SELECT create_hypertable('deribit.candles_1m', by_range('ts', INTERVAL '7 days'), create_default_indexes => false);
COMMENT ON TABLE deribit.candles_1m IS 'One-minute OHLCV candles of perpetuals, futures and options, keyed by the minute they open';

CREATE TABLE deribit.funding_rate_history (
    instrument_id    integer NOT NULL REFERENCES deribit.instruments (id),
    ts               timestamptz NOT NULL,
    interest_1h      double precision,
    interest_8h      double precision,
    index_price      double precision,
    prev_index_price double precision,
    PRIMARY KEY (instrument_id, ts)
);
SELECT create_hypertable('deribit.funding_rate_history', by_range('ts', INTERVAL '365 days'));
COMMENT ON TABLE deribit.funding_rate_history IS 'Hourly funding of perpetuals as returned by public/get_funding_rate_history';

CREATE TABLE deribit.index_price_history (
    index_name   text NOT NULL,
    ts           timestamptz NOT NULL,
    price        double precision NOT NULL,
    resolution   interval NOT NULL,  -- sampling interval of the series this row came from (finest wins)
    PRIMARY KEY (index_name, ts)
);
SELECT create_hypertable('deribit.index_price_history', by_range('ts', INTERVAL '30 days'));
COMMENT ON TABLE deribit.index_price_history IS 'Index prices (btc_usd, eth_usd, ...) at the finest resolution the API gave for each period';

CREATE TABLE deribit.option_ticker_snapshots (
    instrument_id    integer NOT NULL REFERENCES deribit.instruments (id),
    ts               timestamptz NOT NULL,   -- the ticker's own timestamp
    underlying_price double precision,
    underlying_index text,
    index_price      double precision,
    mark_price       double precision,
    mark_iv          double precision,
    bid_iv           double precision,
    ask_iv           double precision,
    best_bid_price   double precision,
    best_ask_price   double precision,
    delta            double precision,
    gamma            double precision,
    vega             double precision,
    theta            double precision,
    rho              double precision,
    interest_rate    double precision,
    open_interest    double precision,
    PRIMARY KEY (instrument_id, ts)
);
SELECT create_hypertable('deribit.option_ticker_snapshots', by_range('ts', INTERVAL '7 days'));
COMMENT ON TABLE deribit.option_ticker_snapshots IS 'Option ticker snapshots: greeks, implied volatilities, underlying and open interest';
