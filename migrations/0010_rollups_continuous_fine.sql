-- deribit-ts: edition=timescale
--
-- Community edition: 5- and 15-minute candles as continuous aggregates (1m -> 5m -> 15m, next to 0006's
-- 1m -> 1h -> 1d), real-time like the others, and a Timescale job that runs deribit_ts.refresh_rollups()
-- (sql/30_rollups.sql) hourly: the refresh policies only look back a few days, the job materializes whatever
-- older history was written since (a backfill killed before its own refresh, a manual import).
--
-- A server that gains the Community license after running on Apache drops the Apache machinery of 0009 here
-- (0006, applied just before, already replaced the hourly and daily views).
DROP TRIGGER IF EXISTS candles_1m_mark_rollups_insert ON deribit.candles_1m;
DROP TRIGGER IF EXISTS candles_1m_mark_rollups_update ON deribit.candles_1m;
DROP TRIGGER IF EXISTS candles_1m_mark_rollups_delete ON deribit.candles_1m;
DROP VIEW IF EXISTS deribit.candles_15m CASCADE;
DROP VIEW IF EXISTS deribit.candles_5m CASCADE;
DROP TABLE IF EXISTS deribit_ts.rollup_5m;
DROP TABLE IF EXISTS deribit_ts.rollup_15m;
DROP TABLE IF EXISTS deribit_ts.rollup_1h;
DROP TABLE IF EXISTS deribit_ts.rollup_1d;
DROP TABLE IF EXISTS deribit_ts.rollup_dirty;
DROP FUNCTION IF EXISTS deribit_ts.mark_rollups_dirty();
DROP FUNCTION IF EXISTS deribit_ts.mark_rollups_dirty_row();

CREATE MATERIALIZED VIEW deribit.candles_5m
WITH (timescaledb.continuous = true, timescaledb.materialized_only = false) AS
SELECT instrument_id,
       time_bucket(INTERVAL '5 minutes', ts) AS ts,
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

CREATE MATERIALIZED VIEW deribit.candles_15m
WITH (timescaledb.continuous = true, timescaledb.materialized_only = false) AS
SELECT instrument_id,
       time_bucket(INTERVAL '15 minutes', ts) AS ts,
       first(open, ts)  AS open,
       max(high)        AS high,
       min(low)         AS low,
       last(close, ts)  AS close,
       sum(volume)      AS volume,
       sum(cost)        AS cost,
       sum(candles)     AS candles
FROM deribit.candles_5m
GROUP BY 1, 2
WITH NO DATA;

SELECT add_continuous_aggregate_policy('deribit.candles_5m',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '10 minutes', schedule_interval => INTERVAL '10 minutes');
SELECT add_continuous_aggregate_policy('deribit.candles_15m',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '30 minutes', schedule_interval => INTERVAL '15 minutes');

-- The job calls the repeatable procedure by name at run time, so its logic stays in sql/30_rollups.sql.
CREATE PROCEDURE deribit_ts.refresh_rollups_job(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    summary jsonb;
BEGIN
    CALL deribit_ts.refresh_rollups(false, summary);
END
$$;
SELECT add_job('deribit_ts.refresh_rollups_job', INTERVAL '1 hour');
