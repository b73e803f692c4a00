-- The trade tape summed per instrument and UTC day, kept current by whatever writes trades (in the same
-- transaction, deribit_ts.refresh_trade_days): the daily smile and flow views read a year of one currency from
-- here (a few hundred thousand rows) instead of aggregating the tape itself (tens of millions of rows).
CREATE TABLE deribit_ts.trade_days (
    instrument_name text NOT NULL,
    day             date NOT NULL,              -- UTC
    trades          integer NOT NULL,
    volume          double precision NOT NULL,  -- sum of amount (options: coin)
    iv_volume       double precision,           -- sum of amount over the trades that carry an iv
    iv_amount       double precision,           -- sum of iv * amount over them (vwap_iv = iv_amount / iv_volume)
    min_iv          double precision,
    max_iv          double precision,
    lm_volume       double precision,           -- sum of amount over the trades with an index price and a strike
    lm_amount       double precision,           -- sum of ln(strike / index_price) * amount over them
    block_volume    double precision NOT NULL,  -- sum of amount over block trades
    PRIMARY KEY (instrument_name, day)
);

-- Liquidations are a sliver of the tape: a partial index finds a year of them without reading the rest.
CREATE INDEX trades_liquidation_idx ON deribit.trades (ts) WHERE liquidation IS NOT NULL;
