-- deribit-ts: edition=apache
--
-- Hourly and daily candles on the Apache edition, which has no continuous aggregates: plain views that
-- aggregate on read. They have the same name and columns as the continuous aggregates of
-- 0006_rollups_continuous.sql, so queries do not care which edition answers. On a server that later
-- gains the Community license, 0006 replaces them.
CREATE VIEW deribit.candles_1h AS
SELECT instrument_id,
       time_bucket(INTERVAL '1 hour', ts) AS ts,
       first(open, ts)  AS open,
       max(high)        AS high,
       min(low)         AS low,
       last(close, ts)  AS close,
       sum(volume)      AS volume,
       sum(cost)        AS cost,
       count(*)         AS candles
FROM deribit.candles_1m
GROUP BY 1, 2;

CREATE VIEW deribit.candles_1d AS
SELECT instrument_id,
       time_bucket(INTERVAL '1 day', ts) AS ts,
       first(open, ts)  AS open,
       max(high)        AS high,
       min(low)         AS low,
       last(close, ts)  AS close,
       sum(volume)      AS volume,
       sum(cost)        AS cost,
       count(*)         AS candles
FROM deribit.candles_1m
GROUP BY 1, 2;
