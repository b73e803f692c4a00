-- deribit-ts: edition=timescale
--
-- Hourly and daily candles as hierarchical continuous aggregates (1m -> 1h -> 1d), refreshed by
-- Timescale background jobs. Created WITH NO DATA because a refresh cannot run inside a transaction
-- (../shared/timescale.md 2.6); the policies and `deribit-ts` refresh them. Real-time aggregation is
-- on, so the newest buckets are correct before the policy has run.
DROP VIEW IF EXISTS deribit.candles_1d CASCADE;
DROP VIEW IF EXISTS deribit.candles_1h CASCADE;

CREATE MATERIALIZED VIEW deribit.candles_1h
WITH (timescaledb.continuous = true, timescaledb.materialized_only = false) AS
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
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW deribit.candles_1d
WITH (timescaledb.continuous = true, timescaledb.materialized_only = false) AS
SELECT instrument_id,
       time_bucket(INTERVAL '1 day', ts) AS ts,
       first(open, ts)  AS open,
       max(high)        AS high,
       min(low)         AS low,
       last(close, ts)  AS close,
       sum(volume)      AS volume,
       sum(cost)        AS cost,
       sum(candles)     AS candles
FROM deribit.candles_1h
GROUP BY 1, 2
WITH NO DATA;

-- The windows cover late revisions the collector re-fetches (a few days); older history is refreshed
-- explicitly by the backfill over exactly the range it loaded.
SELECT add_continuous_aggregate_policy('deribit.candles_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('deribit.candles_1d',
    start_offset => INTERVAL '5 days', end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
