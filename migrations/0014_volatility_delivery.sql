-- DVOL (Deribit's implied volatility index) and daily delivery prices.

-- One-minute DVOL candles per currency, as public/get_volatility_index_data returns them (values as sent: the
-- exchange quotes DVOL in percent). 30-day chunks: 43,200 rows per currency per chunk, well above one
-- compressed batch.
CREATE TABLE deribit.volatility_index (
    currency text NOT NULL,
    ts       timestamptz NOT NULL,   -- the minute the candle opens
    open     double precision NOT NULL,
    high     double precision NOT NULL,
    low      double precision NOT NULL,
    close    double precision NOT NULL,
    PRIMARY KEY (currency, ts)
);
SELECT create_hypertable('deribit.volatility_index', by_range('ts', INTERVAL '30 days'));
COMMENT ON TABLE deribit.volatility_index IS 'DVOL, Deribit''s 30-day implied volatility index, one-minute candles per currency';

-- One price per index and day (the 08:00 UTC delivery): a few thousand rows, a plain table.
CREATE TABLE deribit.delivery_prices (
    index_name     text NOT NULL,
    date           date NOT NULL,
    delivery_price double precision NOT NULL,
    PRIMARY KEY (index_name, date)
);
COMMENT ON TABLE deribit.delivery_prices IS 'Daily delivery (settlement) prices of an index, as public/get_delivery_prices returns them';
