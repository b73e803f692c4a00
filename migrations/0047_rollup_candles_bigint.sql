-- deribit-ts: edition=timescale
--
-- Community edition: the `candles` column of the 15-minute and daily continuous aggregates becomes bigint, as
-- on the Apache edition and in the 5-minute and hourly ones. Those two add up the level below them
-- (sum(candles)), and the sum of a bigint is numeric; a count is now cast back to bigint. A continuous
-- aggregate's query cannot be altered, so both are created again (WITH NO DATA: a refresh cannot run in a
-- transaction) with their refresh policies. Until they are refreshed (`deribit-ts refresh`, the next backfill,
-- or the hourly job of 0010) they answer from the level below them on read (real-time aggregation), so they
-- are exact meanwhile, only slower.
--
-- Views of ours built on them (deribit.ohlcv_15m/1d, the research views) are dropped with them here and
-- created again by the repeatable files right after; privileges granted on the two are granted again by
-- `deribit-ts db migrate`. A view of yours built on them makes this migration refuse and roll back, naming it
-- (nothing of yours is ever dropped): set it aside, migrate, create it again.
DROP MATERIALIZED VIEW deribit.candles_15m CASCADE;
DROP MATERIALIZED VIEW deribit.candles_1d CASCADE;

CREATE MATERIALIZED VIEW deribit.candles_15m
WITH (timescaledb.continuous = true, timescaledb.materialized_only = false) AS
SELECT instrument_id,
       time_bucket(INTERVAL '15 minutes', ts) AS ts,
       first(open, ts)       AS open,
       max(high)             AS high,
       min(low)              AS low,
       last(close, ts)       AS close,
       sum(volume)           AS volume,
       sum(cost)             AS cost,
       sum(candles)::bigint  AS candles
FROM deribit.candles_5m
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW deribit.candles_1d
WITH (timescaledb.continuous = true, timescaledb.materialized_only = false) AS
SELECT instrument_id,
       time_bucket(INTERVAL '1 day', ts) AS ts,
       first(open, ts)       AS open,
       max(high)             AS high,
       min(low)              AS low,
       last(close, ts)       AS close,
       sum(volume)           AS volume,
       sum(cost)             AS cost,
       sum(candles)::bigint  AS candles
FROM deribit.candles_1h
GROUP BY 1, 2
WITH NO DATA;

-- The policies of 0010 and 0006, which went with the aggregates.
SELECT add_continuous_aggregate_policy('deribit.candles_15m',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '30 minutes', schedule_interval => INTERVAL '15 minutes');
SELECT add_continuous_aggregate_policy('deribit.candles_1d',
    start_offset => INTERVAL '5 days', end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
