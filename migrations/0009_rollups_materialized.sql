-- deribit-ts: edition=apache
--
-- Materialized rollups on the Apache edition, which has no continuous aggregates. 0005 made candles_1h/1d
-- plain views that aggregate every one-minute row on each read (0.58 s over a million candles, linear in
-- history). Here they become tables, kept current incrementally:
--   * every write to deribit.candles_1m (backfill, collector, psql) marks the UTC days it touched in
--     deribit_ts.rollup_dirty, in the writer's own transaction (triggers; inserts marked once per statement
--     from the transition table), so no write can be missed, not even one of a run killed before its refresh;
--   * deribit_ts.refresh_rollups() (sql/30_rollups.sql; `deribit-ts refresh`, the end of every backfill,
--     the collector) recomputes only the marked days, level by level (5m <- 1m, 15m <- 5m, 1h <- 15m,
--     1d <- 1h), and removes the marks it consumed;
--   * the views deribit.candles_5m/15m/1h/1d (sql/30_rollups.sql) read the tables for clean days and
--     aggregate the one-minute rows of marked days on read, so they are exact before the refresh, like the
--     Community edition's real-time continuous aggregates.
-- A day is the unit of work: every rollup bucket lies inside one UTC day, and a day of one instrument is at
-- most 1,440 one-minute rows.
--
-- Marks are only ever inserted by writers and deleted by the refresh (never updated), so writers take no row
-- locks here and cannot block one another; duplicates are harmless and collapse at the next refresh.
CREATE TABLE deribit_ts.rollup_dirty (
    instrument_id integer NOT NULL,
    day           timestamptz NOT NULL,   -- UTC midnight of the day whose one-minute rows changed
    removed       boolean NOT NULL DEFAULT false,  -- rows left the day (DELETE, or an UPDATE moving them)
    marked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_dirty_idx ON deribit_ts.rollup_dirty (instrument_id, day);
COMMENT ON TABLE deribit_ts.rollup_dirty IS
    'Apache edition: (instrument, UTC day) whose one-minute candles changed since the rollups were last refreshed';

-- One table per level, the columns of the continuous aggregates of 0006. Hypertables, so time-range scans
-- across instruments prune by chunk like candles_1m does; the primary key serves per-instrument reads.
CREATE TABLE deribit_ts.rollup_5m (
    instrument_id integer NOT NULL,
    ts            timestamptz NOT NULL,
    open          double precision NOT NULL,
    high          double precision NOT NULL,
    low           double precision NOT NULL,
    close         double precision NOT NULL,
    volume        double precision NOT NULL,
    cost          double precision NOT NULL,
    candles       bigint NOT NULL,           -- one-minute rows in the bucket
    PRIMARY KEY (instrument_id, ts)
);
SELECT create_hypertable('deribit_ts.rollup_5m', by_range('ts', INTERVAL '35 days'), create_default_indexes => false);

CREATE TABLE deribit_ts.rollup_15m (LIKE deribit_ts.rollup_5m INCLUDING ALL);
SELECT create_hypertable('deribit_ts.rollup_15m', by_range('ts', INTERVAL '105 days'), create_default_indexes => false);

CREATE TABLE deribit_ts.rollup_1h (LIKE deribit_ts.rollup_5m INCLUDING ALL);
SELECT create_hypertable('deribit_ts.rollup_1h', by_range('ts', INTERVAL '420 days'), create_default_indexes => false);

CREATE TABLE deribit_ts.rollup_1d (LIKE deribit_ts.rollup_5m INCLUDING ALL);
SELECT create_hypertable('deribit_ts.rollup_1d', by_range('ts', INTERVAL '3650 days'), create_default_indexes => false);

COMMENT ON TABLE deribit_ts.rollup_5m IS 'Apache edition: materialized 5-minute candles; query deribit.ohlcv_5m';
COMMENT ON TABLE deribit_ts.rollup_15m IS 'Apache edition: materialized 15-minute candles; query deribit.ohlcv_15m';
COMMENT ON TABLE deribit_ts.rollup_1h IS 'Apache edition: materialized hourly candles; query deribit.ohlcv_1h';
COMMENT ON TABLE deribit_ts.rollup_1d IS 'Apache edition: materialized daily candles; query deribit.ohlcv_1d';

-- The marking triggers. Inserts (the bulk path: COPY and upserts of new candles) are marked once per statement
-- from the transition table. Updates and deletes (revisions, repairs: rare) are marked per row, because
-- Timescale refuses columnstore on a hypertable with UPDATE/DELETE transition-table triggers, and a server
-- that gains the Community license must be able to apply 0007 before 0010 drops these. An upsert fires both
-- the INSERT and the UPDATE triggers. `removed` tells the refresh that buckets may have lost all their
-- candles (only then does it look for buckets to delete).
CREATE FUNCTION deribit_ts.mark_rollups_dirty() RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deribit_ts.rollup_dirty (instrument_id, day)
    SELECT DISTINCT instrument_id, time_bucket(INTERVAL '1 day', ts) FROM new_rows;
    RETURN NULL;
END
$$;

CREATE FUNCTION deribit_ts.mark_rollups_dirty_row() RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO deribit_ts.rollup_dirty (instrument_id, day)
        VALUES (NEW.instrument_id, time_bucket(INTERVAL '1 day', NEW.ts));
        IF (OLD.instrument_id, OLD.ts) IS DISTINCT FROM (NEW.instrument_id, NEW.ts) THEN
            INSERT INTO deribit_ts.rollup_dirty (instrument_id, day, removed)
            VALUES (OLD.instrument_id, time_bucket(INTERVAL '1 day', OLD.ts), true);
        END IF;
    ELSE
        INSERT INTO deribit_ts.rollup_dirty (instrument_id, day, removed)
        VALUES (OLD.instrument_id, time_bucket(INTERVAL '1 day', OLD.ts), true);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER candles_1m_mark_rollups_insert AFTER INSERT ON deribit.candles_1m
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.mark_rollups_dirty();
CREATE TRIGGER candles_1m_mark_rollups_update AFTER UPDATE ON deribit.candles_1m
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.mark_rollups_dirty_row();
CREATE TRIGGER candles_1m_mark_rollups_delete AFTER DELETE ON deribit.candles_1m
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.mark_rollups_dirty_row();

-- Existing installs: the history already loaded is marked, so the views stay exact (aggregated on read, as
-- before) until the first refresh materializes it (`deribit-ts refresh`, or the next backfill).
DROP VIEW IF EXISTS deribit.candles_1d CASCADE;
DROP VIEW IF EXISTS deribit.candles_1h CASCADE;
INSERT INTO deribit_ts.rollup_dirty (instrument_id, day)
SELECT DISTINCT instrument_id, time_bucket(INTERVAL '1 day', ts) FROM deribit.candles_1m;
