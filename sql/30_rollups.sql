-- Rollups of the one-minute candles: 5-minute, 15-minute, hourly and daily, on both editions.
--
-- Community (TSL): deribit.candles_5m/15m/1h/1d are hierarchical continuous aggregates (migrations 0006 and
-- 0010), kept by refresh policies (Timescale jobs). Apache: they are views over the tables of
-- 0009_rollups_materialized.sql, created below. Either way the public views are deribit.ohlcv_5m/15m/1h/1d,
-- and deribit_ts.refresh_rollups() brings the rollups up to date: the same procedure for the CLI
-- (`deribit-ts refresh`), the end of every backfill, the collector and the Timescale job.

-- Apache: the id-keyed rollup view of one level. Clean days come from the materialized table; days marked in
-- rollup_dirty (written since the last refresh) are aggregated from the one-minute rows on read, so the view
-- is exact at any time and only as slow as what is not yet refreshed.
CREATE OR REPLACE FUNCTION deribit_ts.create_materialized_rollup_view(p_level text, p_bucket interval)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        $view$
        CREATE OR REPLACE VIEW deribit.%1$I AS
        SELECT m.instrument_id, m.ts, m.open, m.high, m.low, m.close, m.volume, m.cost, m.candles
          FROM deribit_ts.%2$I m
         WHERE NOT EXISTS (SELECT 1 FROM deribit_ts.rollup_dirty d
                            WHERE d.instrument_id = m.instrument_id AND d.day = time_bucket(INTERVAL '1 day', m.ts))
        UNION ALL
        SELECT c.instrument_id, time_bucket(%3$L::interval, c.ts) AS ts, first(c.open, c.ts), max(c.high),
               min(c.low), last(c.close, c.ts), sum(c.volume), sum(c.cost), count(*)
          FROM (SELECT DISTINCT instrument_id, day FROM deribit_ts.rollup_dirty) d
          JOIN deribit.candles_1m c
            ON c.instrument_id = d.instrument_id AND c.ts >= d.day AND c.ts < d.day + INTERVAL '1 day'
         GROUP BY 1, 2
        $view$, 'candles_' || p_level, 'rollup_' || p_level, p_bucket);
END
$$;

-- The Apache views exist where the materialized tables do (0009 creates them on Apache only; 0010 drops them
-- when a server gains the Community license). Elsewhere this does nothing.
CREATE OR REPLACE FUNCTION deribit_ts.create_materialized_rollup_views()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    level record;
    created integer := 0;
BEGIN
    FOR level IN SELECT * FROM (VALUES ('5m', INTERVAL '5 minutes'), ('15m', INTERVAL '15 minutes'),
                                       ('1h', INTERVAL '1 hour'), ('1d', INTERVAL '1 day')) AS l (name, bucket)
    LOOP
        IF to_regclass('deribit_ts.rollup_' || level.name) IS NOT NULL THEN
            PERFORM deribit_ts.create_materialized_rollup_view(level.name, level.bucket);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

SELECT deribit_ts.create_materialized_rollup_views();

-- The public views. The instrument's rows are read in a LATERAL subquery so a filter on instrument_name reaches
-- the rollup as `instrument_id = <that id>` (index scan of one instrument on both editions) instead of joining
-- the whole rollup; ORDER BY keeps the planner from flattening the subquery, and filters on ts still reach it.
CREATE OR REPLACE VIEW deribit.ohlcv_5m AS
SELECT i.instrument_name, c.ts, c.open, c.high, c.low, c.close, c.volume, c.cost, c.candles
FROM deribit.instruments i
CROSS JOIN LATERAL (SELECT * FROM deribit.candles_5m r WHERE r.instrument_id = i.id ORDER BY r.ts) c;

CREATE OR REPLACE VIEW deribit.ohlcv_15m AS
SELECT i.instrument_name, c.ts, c.open, c.high, c.low, c.close, c.volume, c.cost, c.candles
FROM deribit.instruments i
CROSS JOIN LATERAL (SELECT * FROM deribit.candles_15m r WHERE r.instrument_id = i.id ORDER BY r.ts) c;

CREATE OR REPLACE VIEW deribit.ohlcv_1h AS
SELECT i.instrument_name, c.ts, c.open, c.high, c.low, c.close, c.volume, c.cost, c.candles
FROM deribit.instruments i
CROSS JOIN LATERAL (SELECT * FROM deribit.candles_1h r WHERE r.instrument_id = i.id ORDER BY r.ts) c;

CREATE OR REPLACE VIEW deribit.ohlcv_1d AS
SELECT i.instrument_name, c.ts, c.open, c.high, c.low, c.close, c.volume, c.cost, c.candles
FROM deribit.instruments i
CROSS JOIN LATERAL (SELECT * FROM deribit.candles_1d r WHERE r.instrument_id = i.id ORDER BY r.ts) c;

-- The one-minute series exactly as the exchange's chart endpoint answers it, fillers included: for perpetuals and
-- futures the stored rows (their zero-volume filler candles are stored); for options the traded minutes (the
-- stored rows) and, for every minute the exchange answered with a filler candle (coverage.filled, not stored),
-- the filler rebuilt as the exchange makes it: open = high = low = close = the last traded close before it,
-- volume 0, cost 0, filler true. A SQL function that the planner inlines: its bounds reach the hypertable as
-- constants, so only the chunks of [since, until) are read. NULL bounds are open.
CREATE OR REPLACE FUNCTION deribit.ohlcv_1m_exchange(instrument_name text, since timestamptz, until timestamptz)
RETURNS TABLE (ts timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, cost double precision, filler boolean)
LANGUAGE sql STABLE AS $$
SELECT c.ts, c.open, c.high, c.low, c.close, c.volume, c.cost, false
  FROM deribit.candles_1m c
 WHERE c.instrument_id = (SELECT i.id FROM deribit.instruments i WHERE i.instrument_name = $1)
   AND c.ts >= coalesce($2, '-infinity') AND c.ts < coalesce($3, 'infinity')
UNION ALL
SELECT m, p.close, p.close, p.close, p.close, 0, 0, true
  FROM deribit_ts.coverage cv
 CROSS JOIN LATERAL unnest(cv.filled * tstzmultirange(tstzrange($2, $3))) AS f (minutes)
 -- the close the fillers of this run repeat: the last traded minute before it
 CROSS JOIN LATERAL (SELECT c.close FROM deribit.candles_1m c
                      WHERE c.instrument_id = (SELECT i.id FROM deribit.instruments i WHERE i.instrument_name = $1)
                        AND c.ts < lower(f.minutes)
                      ORDER BY c.ts DESC LIMIT 1) p
 CROSS JOIN LATERAL generate_series(date_trunc('minute', lower(f.minutes)), upper(f.minutes) - interval '1 minute',
                                    interval '1 minute') AS m
 WHERE cv.dataset = 'candles' AND cv.key = $1 AND cv.filled IS NOT NULL
   AND cv.fetched && tstzrange($2, $3)
ORDER BY 1
$$;

-- Apache: recompute the rollups of every marked day, and consume the marks. One transaction: readers see the
-- marks and the old rows, or neither. The marks deleted are those committed before this statement began, whose
-- candles the following statements (later snapshots) therefore see; a mark committed meanwhile stays for the
-- next refresh. Each level is rebuilt from the level below it (5m from the one-minute rows), touching only the
-- marked days; a bucket whose value is unchanged is not rewritten, a bucket whose candles are gone is deleted
-- (looked for only on days that lost rows).
-- Days are worked in batches in time order, each statement bounded by literal times, so the planner reads only
-- the chunks of that batch and the work of a statement stays bounded however much is marked (the first refresh
-- after an upgrade covers all history). Within a batch each marked (instrument, day) is aggregated on its own,
-- in a LATERAL subquery: an index range scan of that instrument's day (the chunks outside it are excluded at run
-- time) and an aggregation of at most 1,440 rows. A plain join of the batch to the source lets the planner pick
-- a merge join on instrument_id alone, which on a database of one instrument compares every marked day with
-- every row of the batch's range (200 days: 57 million pairs thrown away, 18x the time of this shape).
-- "Unchanged": OHLC and the count are picked values and compare exactly; volume and cost are float sums, whose
-- last bits depend on the order the rows were added in, so they count as unchanged within a relative 1e-12 (the
-- order error of at most 1,440 non-negative terms is under 2e-13; a real change of one minute is far larger).
-- Returns {"days": n, "rows": {level: bucket rows written or deleted}}.
CREATE OR REPLACE FUNCTION deribit_ts.refresh_materialized_rollups(p_full boolean DEFAULT false,
                                                                    p_batch_days integer DEFAULT 200)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    level record;
    days integer;
    batch integer;
    lo timestamptz;
    hi timestamptz;
    changed integer;
    written jsonb := '{"5m": 0, "15m": 0, "1h": 0, "1d": 0}';
BEGIN
    -- One refresh at a time: two would each upsert the same buckets.
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.refresh_rollups'));
    PERFORM set_config('work_mem', '64MB', true);
    IF p_full THEN
        -- Rebuild: every day that has candles, whatever the marks say (after manual surgery on the tables).
        TRUNCATE deribit_ts.rollup_5m, deribit_ts.rollup_15m, deribit_ts.rollup_1h, deribit_ts.rollup_1d;
        INSERT INTO deribit_ts.rollup_dirty (instrument_id, day)
        SELECT DISTINCT instrument_id, time_bucket(INTERVAL '1 day', ts) FROM deribit.candles_1m;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS rollup_refresh_days (
        n integer NOT NULL, instrument_id integer NOT NULL, day timestamptz NOT NULL, removed boolean NOT NULL
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS rollup_refresh_batch (
        instrument_id integer NOT NULL, day timestamptz NOT NULL, removed boolean NOT NULL,
        PRIMARY KEY (instrument_id, day)
    ) ON COMMIT DELETE ROWS;
    TRUNCATE rollup_refresh_days;
    WITH consumed AS (DELETE FROM deribit_ts.rollup_dirty RETURNING instrument_id, day, removed),
         distinct_days AS (SELECT instrument_id, day, bool_or(removed) AS removed FROM consumed GROUP BY 1, 2)
    INSERT INTO rollup_refresh_days
    SELECT (row_number() OVER (ORDER BY day, instrument_id) - 1)::integer, instrument_id, day, removed
      FROM distinct_days;
    GET DIAGNOSTICS days = ROW_COUNT;
    IF days = 0 THEN
        RETURN jsonb_build_object('days', 0, 'rows', written);
    END IF;
    FOR batch IN 0 .. (days - 1) / p_batch_days LOOP
        TRUNCATE rollup_refresh_batch;
        INSERT INTO rollup_refresh_batch
        SELECT instrument_id, day, removed FROM rollup_refresh_days WHERE n / p_batch_days = batch;
        SELECT min(day), max(day) + INTERVAL '1 day' INTO lo, hi FROM rollup_refresh_batch;
        FOR level IN SELECT * FROM (VALUES
                ('5m', INTERVAL '5 minutes', 'deribit', 'candles_1m', 'count(*)'),
                ('15m', INTERVAL '15 minutes', 'deribit_ts', 'rollup_5m', 'sum(s.candles)::bigint'),
                ('1h', INTERVAL '1 hour', 'deribit_ts', 'rollup_15m', 'sum(s.candles)::bigint'),
                ('1d', INTERVAL '1 day', 'deribit_ts', 'rollup_1h', 'sum(s.candles)::bigint'))
            AS l (name, bucket, source_schema, source, candles)
        LOOP
            EXECUTE format(
                $upsert$
                INSERT INTO deribit_ts.%1$I AS m (instrument_id, ts, open, high, low, close, volume, cost, candles)
                SELECT d.instrument_id, a.ts, a.open, a.high, a.low, a.close, a.volume, a.cost, a.candles
                  FROM rollup_refresh_batch d
                 CROSS JOIN LATERAL (
                       SELECT time_bucket(%2$L::interval, s.ts) AS ts, first(s.open, s.ts) AS open,
                              max(s.high) AS high, min(s.low) AS low, last(s.close, s.ts) AS close,
                              sum(s.volume) AS volume, sum(s.cost) AS cost, %5$s AS candles
                         FROM %3$I.%4$I s
                        WHERE s.instrument_id = d.instrument_id
                          AND s.ts >= d.day AND s.ts < d.day + INTERVAL '1 day'
                          AND s.ts >= %6$L::timestamptz AND s.ts < %7$L::timestamptz
                        GROUP BY 1) a
                ON CONFLICT (instrument_id, ts) DO UPDATE
                   SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                       volume = EXCLUDED.volume, cost = EXCLUDED.cost, candles = EXCLUDED.candles
                 WHERE (m.open, m.high, m.low, m.close, m.candles)
                       IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.candles)
                    OR abs(m.volume - EXCLUDED.volume) > 1e-12 * greatest(abs(m.volume), abs(EXCLUDED.volume))
                    OR abs(m.cost - EXCLUDED.cost) > 1e-12 * greatest(abs(m.cost), abs(EXCLUDED.cost))
                $upsert$, 'rollup_' || level.name, level.bucket, level.source_schema, level.source, level.candles,
                lo, hi);
            GET DIAGNOSTICS changed = ROW_COUNT;
            written := jsonb_set(written, ARRAY[level.name], to_jsonb((written ->> level.name)::integer + changed));
            CONTINUE WHEN NOT EXISTS (SELECT 1 FROM rollup_refresh_batch WHERE removed);
            EXECUTE format(
                $delete$
                DELETE FROM deribit_ts.%1$I m
                 USING rollup_refresh_batch d
                 WHERE d.removed AND m.instrument_id = d.instrument_id
                   AND m.ts >= d.day AND m.ts < d.day + INTERVAL '1 day' AND m.ts >= %5$L::timestamptz AND m.ts < %6$L::timestamptz
                   AND NOT EXISTS (SELECT 1 FROM %3$I.%4$I s
                                    WHERE s.instrument_id = m.instrument_id AND s.ts >= m.ts
                                      AND s.ts < m.ts + %2$L::interval
                                      AND s.ts >= %5$L::timestamptz AND s.ts < %6$L::timestamptz)
                $delete$, 'rollup_' || level.name, level.bucket, level.source_schema, level.source, lo, hi);
            GET DIAGNOSTICS changed = ROW_COUNT;
            written := jsonb_set(written, ARRAY[level.name], to_jsonb((written ->> level.name)::integer + changed));
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object('days', days, 'rows', written);
END
$$;

-- Bring every rollup up to date; the one entry point (CLI, backfill, collector, Timescale job). Call it with
-- CALL outside a transaction block: on the Community edition refresh_continuous_aggregate commits as it goes.
--   Apache: recompute the marked days (above).
--   Community: refresh each continuous aggregate over its whole range, lower layers first. Timescale keeps an
--   invalidation log of every write below the aggregates' thresholds, so this recomputes only the buckets that
--   changed (history a backfill loaded, revisions, a killed run's windows) and is a no-op when none did.
-- Either way, the candle coverage rows read at the start are then marked rolled up (0008).
-- p_full: Apache rebuilds every rollup from the one-minute rows; Community forces nothing (the invalidation
-- log is authoritative). summary: {"edition", "rollups", "days", "rows", "basis_term_structure": {"days", "rows"},
-- "funding_apr": {"days", "rows"},
-- "coverage_rows", "seconds"}.
CREATE OR REPLACE PROCEDURE deribit_ts.refresh_rollups(p_full boolean DEFAULT false, INOUT summary jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    pending bigint[];
    materialized jsonb;
    cagg text;
    refreshed text[] := '{}';
BEGIN
    SELECT coalesce(array_agg(coverage_id), '{}') INTO pending
      FROM deribit_ts.coverage WHERE dataset = 'candles' AND rows > 0 AND rolled_up_at IS NULL;
    IF to_regclass('deribit_ts.rollup_dirty') IS NOT NULL THEN
        materialized := deribit_ts.refresh_materialized_rollups(p_full);
        IF (materialized ->> 'days')::integer > 0 THEN
            refreshed := ARRAY['deribit.candles_5m', 'deribit.candles_15m', 'deribit.candles_1h', 'deribit.candles_1d'];
        END IF;
        summary := jsonb_build_object('edition', 'apache') || materialized;
    ELSE
        FOR cagg IN
            SELECT 'deribit.' || view_name FROM timescaledb_information.continuous_aggregates
             WHERE view_schema = 'deribit' AND view_name IN ('candles_5m', 'candles_15m', 'candles_1h', 'candles_1d')
             ORDER BY array_position(ARRAY['candles_5m', 'candles_15m', 'candles_1h', 'candles_1d'], view_name::text)
        LOOP
            CALL refresh_continuous_aggregate(cagg::regclass, NULL, NULL);
            refreshed := refreshed || cagg;
        END LOOP;
        summary := jsonb_build_object('edition', 'timescale', 'days', NULL, 'rows', NULL);
    END IF;
    -- The hourly basis term structure rests on the hourly rollup: stored once that is up to date (0048).
    IF to_regclass('deribit_ts.basis_ts_dirty') IS NOT NULL THEN
        summary := summary || jsonb_build_object('basis_term_structure', deribit_ts.refresh_basis_term_structure());
    END IF;
    -- The trailing funding means (0051).
    IF to_regclass('deribit_ts.funding_apr_dirty') IS NOT NULL THEN
        summary := summary || jsonb_build_object('funding_apr', deribit_ts.refresh_funding_apr());
    END IF;
    UPDATE deribit_ts.coverage SET rolled_up_at = now() WHERE coverage_id = ANY (pending) AND rolled_up_at IS NULL;
    summary := summary || jsonb_build_object(
        'rollups', to_jsonb(refreshed), 'coverage_rows', cardinality(pending),
        'seconds', round(extract(epoch FROM clock_timestamp() - started)::numeric, 3));
END
$$;

-- Storage (Community edition): columnstore on the hypertables other workstreams add later, once they exist.
-- 0007 set it up for candles, funding, index and snapshots; deribit.volatility_index (DVOL) is created by a later
-- migration, so it is configured here, idempotently, whenever the repeatable files are applied after it.
-- Segment by the key, order by time (the primary key's columns); compress once older than the collector's
-- revision window. Apache: nothing (no compression on that edition).
CREATE OR REPLACE FUNCTION deribit_ts.ensure_columnstore()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    configured integer := 0;
BEGIN
    IF current_setting('timescaledb.license', true) IS DISTINCT FROM 'timescale' THEN
        RETURN 0;
    END IF;
    FOR t IN SELECT * FROM (VALUES ('volatility_index', 'currency', 'ts DESC', INTERVAL '60 days'))
                 AS v (name, segmentby, orderby, after)
    LOOP
        IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                    WHERE hypertable_schema = 'deribit' AND hypertable_name = t.name AND NOT compression_enabled) THEN
            EXECUTE format('ALTER TABLE deribit.%I SET (timescaledb.enable_columnstore, timescaledb.segmentby = %L, '
                           'timescaledb.orderby = %L)', t.name, t.segmentby, t.orderby);
            EXECUTE format('CALL add_columnstore_policy(%L::regclass, after => %L::interval, if_not_exists => true)',
                           'deribit.' || t.name, t.after);
            configured := configured + 1;
        END IF;
    END LOOP;
    RETURN configured;
END
$$;

SELECT deribit_ts.ensure_columnstore();

-- Per hypertable (market data, and the Apache rollup tables): rows, bytes on disk (table, indexes, toast,
-- compressed chunks), bytes per row, and on the Community edition the columnstore's before/after sizes of the
-- compressed chunks and their ratio. Rows are counted exactly (count(*)): a size report is not a hot path.
CREATE OR REPLACE FUNCTION deribit_ts.storage_report()
RETURNS TABLE (hypertable text, rows bigint, total_bytes bigint, bytes_per_row numeric, chunks bigint,
               compressed_chunks bigint, compressed_bytes_before bigint, compressed_bytes_after bigint,
               compression_ratio numeric)
LANGUAGE plpgsql AS $$
DECLARE
    h record;
    tsl boolean := current_setting('timescaledb.license', true) = 'timescale';
BEGIN
    FOR h IN SELECT hypertable_schema, hypertable_name, num_chunks FROM timescaledb_information.hypertables
              WHERE hypertable_schema IN ('deribit', 'deribit_ts') ORDER BY 1, 2
    LOOP
        hypertable := h.hypertable_schema || '.' || h.hypertable_name;
        EXECUTE format('SELECT count(*) FROM %I.%I', h.hypertable_schema, h.hypertable_name) INTO rows;
        total_bytes := hypertable_size(hypertable::regclass);
        bytes_per_row := CASE WHEN rows > 0 THEN round(total_bytes::numeric / rows, 1) END;
        chunks := h.num_chunks;
        compressed_chunks := 0;
        compressed_bytes_before := NULL;
        compressed_bytes_after := NULL;
        compression_ratio := NULL;
        IF tsl THEN
            SELECT s.number_compressed_chunks, s.before_compression_total_bytes, s.after_compression_total_bytes
              INTO compressed_chunks, compressed_bytes_before, compressed_bytes_after
              FROM hypertable_columnstore_stats(hypertable::regclass) s;
            compressed_chunks := coalesce(compressed_chunks, 0);
            compression_ratio := CASE WHEN compressed_bytes_after > 0
                                      THEN round(compressed_bytes_before::numeric / compressed_bytes_after, 2) END;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Community: compress now whatever the columnstore policies would compress on their next run (chunks older than
-- each policy's `after`), by running those policy jobs in the foreground. Call outside a transaction block.
-- summary: {"jobs": n, "chunks_before": compressed chunks before, "chunks_after": after}.
CREATE OR REPLACE PROCEDURE deribit_ts.compress_due(INOUT summary jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    job integer;
    jobs integer := 0;
    before_count bigint;
    after_count bigint;
BEGIN
    IF current_setting('timescaledb.license', true) IS DISTINCT FROM 'timescale' THEN
        RAISE EXCEPTION 'compression is not available on the TimescaleDB Apache edition'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    SELECT count(*) INTO before_count FROM timescaledb_information.chunks WHERE is_compressed;
    FOR job IN SELECT job_id FROM timescaledb_information.jobs
                WHERE proc_name = 'policy_compression' AND hypertable_schema IN ('deribit', 'deribit_ts')
                ORDER BY job_id
    LOOP
        CALL run_job(job);
        jobs := jobs + 1;
    END LOOP;
    SELECT count(*) INTO after_count FROM timescaledb_information.chunks WHERE is_compressed;
    summary := jsonb_build_object('jobs', jobs, 'chunks_before', before_count, 'chunks_after', after_count);
END
$$;
