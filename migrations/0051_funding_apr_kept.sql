-- The trailing funding means, kept: deribit.funding_apr read up to 168 hourly rows of the perpetual for every
-- row it returned (a 30-day read: 720 rows, 121,000 read; 60-80 times a read of its own rows). Now the refresh
-- that brings the rollups up to date (deribit_ts.refresh_rollups: `deribit-ts refresh`, the backfill, the
-- collector) stores each funding row's trailing means here, and the view reads them, computing on read only the
-- UTC days marked in funding_apr_dirty (whose means may have changed since the last refresh: the newest hours,
-- and the week after any past hour re-loaded), so it is exact at any moment (sql/50_basis_funding.sql).

-- One row per funding record (instrument, hour): the record's rate and its trailing 24-hour and 7-day means.
CREATE TABLE deribit_ts.funding_apr_kept (
    instrument_id integer NOT NULL,
    ts            timestamptz NOT NULL,
    interest_1h   double precision,
    mean_1d       double precision,   -- avg(interest_1h) over the records in (ts - 24 h, ts]
    mean_7d       double precision,   -- avg(interest_1h) over the records in (ts - 168 h, ts]
    hours_1d      bigint NOT NULL,    -- count(interest_1h) there
    hours_7d      bigint NOT NULL,
    PRIMARY KEY (instrument_id, ts)
);
COMMENT ON TABLE deribit_ts.funding_apr_kept IS
    'Funding records with their trailing means as of the last refresh (UTC days in funding_apr_dirty excepted); read through deribit.funding_apr';

-- UTC days whose rows' means may have changed since the last refresh. Only ever inserted by writers and deleted
-- by the refresh, so writers take no row locks here; duplicates collapse at the refresh.
CREATE TABLE deribit_ts.funding_apr_dirty (
    day timestamptz NOT NULL   -- UTC midnight of the day of the rows (ts) to compute again
);
CREATE INDEX funding_apr_dirty_day_idx ON deribit_ts.funding_apr_dirty (day);
COMMENT ON TABLE deribit_ts.funding_apr_dirty IS
    'UTC days of deribit.funding_apr written since the last refresh (a record and the 7 days after it): computed on read until refreshed';

-- The marks, in the writer's transaction: a record at ts enters the 7-day mean of every row in [ts, ts + 168 h),
-- so its day and the 7 after it. Inserts are marked once per statement from the transition table; updates and
-- deletes (rare) per row, as the basis term structure's are (0048).
CREATE FUNCTION deribit_ts.mark_funding_apr_dirty() RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deribit_ts.funding_apr_dirty (day)
    SELECT DISTINCT d.day + k * INTERVAL '1 day'
      FROM (SELECT DISTINCT time_bucket(INTERVAL '1 day', ts) AS day FROM new_rows) d,
           generate_series(0, 7) k;
    RETURN NULL;
END
$$;

CREATE FUNCTION deribit_ts.mark_funding_apr_dirty_row() RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO deribit_ts.funding_apr_dirty (day)
        SELECT time_bucket(INTERVAL '1 day', NEW.ts) + k * INTERVAL '1 day' FROM generate_series(0, 7) k;
    END IF;
    INSERT INTO deribit_ts.funding_apr_dirty (day)
    SELECT time_bucket(INTERVAL '1 day', OLD.ts) + k * INTERVAL '1 day' FROM generate_series(0, 7) k;
    RETURN NULL;
END
$$;

CREATE TRIGGER funding_rate_history_mark_funding_apr_insert AFTER INSERT ON deribit.funding_rate_history
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.mark_funding_apr_dirty();
CREATE TRIGGER funding_rate_history_mark_funding_apr_change AFTER UPDATE OR DELETE ON deribit.funding_rate_history
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.mark_funding_apr_dirty_row();

-- Existing installs: every day of the history loaded is marked, so the view computes it on read (as before)
-- until the first refresh stores it.
INSERT INTO deribit_ts.funding_apr_dirty (day)
SELECT generate_series(time_bucket(INTERVAL '1 day', lo), time_bucket(INTERVAL '1 day', hi) + INTERVAL '7 days',
                       INTERVAL '1 day')
  FROM (SELECT min(ts) AS lo, max(ts) AS hi FROM deribit.funding_rate_history) r
 WHERE lo IS NOT NULL;
