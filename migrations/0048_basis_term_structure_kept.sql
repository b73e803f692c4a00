-- The hourly basis term structure, kept: deribit.basis_term_structure joined every hourly bar of a currency's
-- dated futures to the index on the hour on each read (a currency's whole history: 305,000 bars, 1.7-4.7 s).
-- Now the refresh that brings the rollups up to date (deribit_ts.refresh_rollups: `deribit-ts refresh`, the
-- backfill, the collector) stores its rows here, and the view reads them, computing on read only the UTC days
-- marked in basis_ts_dirty (written since the last refresh: the newest hours, and any past day re-loaded), so
-- it is exact at any moment (sql/50_basis_funding.sql).

-- One row per dated future and full hour where the index is known on the hour: the inputs of the view's row.
CREATE TABLE deribit_ts.basis_ts_hourly (
    instrument_id integer NOT NULL,
    ts            timestamptz NOT NULL,            -- the full hour
    future_price  double precision NOT NULL,       -- close of the future's hourly bar ending at ts
    index_price   double precision NOT NULL,       -- the index at ts
    index_source  smallint NOT NULL,               -- 1: index history, 2: a perpetual's funding record
    PRIMARY KEY (instrument_id, ts)
);
COMMENT ON TABLE deribit_ts.basis_ts_hourly IS
    'The hourly basis term structure as of the last refresh (UTC days in basis_ts_dirty excepted); read through deribit.basis_term_structure';

-- UTC days whose term-structure hours may have changed since the last refresh. Only ever inserted by writers
-- and deleted by the refresh, so writers take no row locks here; duplicates collapse at the refresh.
CREATE TABLE deribit_ts.basis_ts_dirty (
    day timestamptz NOT NULL   -- UTC midnight of the day of the hours (ts) to compute again
);
CREATE INDEX basis_ts_dirty_day_idx ON deribit_ts.basis_ts_dirty (day);
COMMENT ON TABLE deribit_ts.basis_ts_dirty IS
    'UTC days of the basis term structure written since the last refresh: computed on read until refreshed';

-- The marks, in the writer's transaction. A candle at ts lies in the hourly bar that the hour (ts truncated) +
-- 1 hour reads, whose day is that of ts + 1 hour; an index or funding sample at ts is read at the hour ts.
-- Inserts are marked once per statement from the transition table; updates and deletes (rare) per row, as the
-- rollups' marks are (0009: Timescale's columnstore refuses UPDATE/DELETE transition tables).
CREATE FUNCTION deribit_ts.mark_basis_ts_dirty() RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deribit_ts.basis_ts_dirty (day)
    SELECT DISTINCT time_bucket(INTERVAL '1 day', ts + CASE WHEN TG_ARGV[0] = 'candles' THEN INTERVAL '1 hour'
                                                             ELSE INTERVAL '0' END)
      FROM new_rows;
    RETURN NULL;
END
$$;

CREATE FUNCTION deribit_ts.mark_basis_ts_dirty_row() RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
DECLARE
    lag interval := CASE WHEN TG_ARGV[0] = 'candles' THEN INTERVAL '1 hour' ELSE INTERVAL '0' END;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO deribit_ts.basis_ts_dirty (day) VALUES (time_bucket(INTERVAL '1 day', NEW.ts + lag));
    END IF;
    INSERT INTO deribit_ts.basis_ts_dirty (day) VALUES (time_bucket(INTERVAL '1 day', OLD.ts + lag));
    RETURN NULL;
END
$$;

CREATE TRIGGER candles_1m_mark_basis_ts_insert AFTER INSERT ON deribit.candles_1m
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.mark_basis_ts_dirty('candles');
CREATE TRIGGER candles_1m_mark_basis_ts_change AFTER UPDATE OR DELETE ON deribit.candles_1m
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.mark_basis_ts_dirty_row('candles');
CREATE TRIGGER index_price_history_mark_basis_ts_insert AFTER INSERT ON deribit.index_price_history
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.mark_basis_ts_dirty('index');
CREATE TRIGGER index_price_history_mark_basis_ts_change AFTER UPDATE OR DELETE ON deribit.index_price_history
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.mark_basis_ts_dirty_row('index');
CREATE TRIGGER funding_rate_history_mark_basis_ts_insert AFTER INSERT ON deribit.funding_rate_history
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.mark_basis_ts_dirty('funding');
CREATE TRIGGER funding_rate_history_mark_basis_ts_change AFTER UPDATE OR DELETE ON deribit.funding_rate_history
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.mark_basis_ts_dirty_row('funding');

-- Existing installs: every day of the history loaded is marked, so the view computes it on read (as before)
-- until the first refresh stores it.
INSERT INTO deribit_ts.basis_ts_dirty (day)
SELECT generate_series(time_bucket(INTERVAL '1 day', lo), time_bucket(INTERVAL '1 day', hi + INTERVAL '1 hour'),
                       INTERVAL '1 day')
  FROM (SELECT least((SELECT min(ts) FROM deribit.candles_1m), (SELECT min(ts) FROM deribit.index_price_history),
                     (SELECT min(ts) FROM deribit.funding_rate_history)) AS lo,
               greatest((SELECT max(ts) FROM deribit.candles_1m), (SELECT max(ts) FROM deribit.index_price_history),
                        (SELECT max(ts) FROM deribit.funding_rate_history)) AS hi) r
 WHERE lo IS NOT NULL;
