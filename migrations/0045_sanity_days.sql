-- What the sanity findings were judged on, per instrument and UTC day: the day's candle aggregate (from
-- deribit.candles_1d) and its trade count and volume (deribit_ts.trade_days). A refresh judges again the days whose
-- aggregate differs from what is kept here (a late window, a re-load, candles written by hand, trades fetched for
-- old candles), whoever wrote them, on either edition, without reading the candles of the days that did not change.
CREATE TABLE deribit_ts.sanity_days (
    instrument_id integer NOT NULL REFERENCES deribit.instruments (id) ON DELETE CASCADE,
    day           timestamptz NOT NULL,  -- UTC midnight
    candles       bigint,
    open          double precision,
    high          double precision,
    low           double precision,
    close         double precision,
    volume        double precision,
    cost          double precision,
    trades        integer,
    trade_volume  double precision,
    PRIMARY KEY (instrument_id, day)
);
COMMENT ON TABLE deribit_ts.sanity_days IS
    'Per instrument and UTC day: the candle aggregate and trade count the sanity findings were judged on (a day that differs is judged again by the next refresh)';
