-- Basis of dated futures against their index, the basis term structure, and funding as an APR.
--
-- Conventions (all three views):
--   * percentages are percent (1.5 = 1.5 %), as Deribit quotes them;
--   * annualized figures are simple, not compounded, on a 365-day year: a basis of b % with d days to
--     expiry is b * 365 / d % a year; an hourly funding rate r is r * 24 * 365 * 100 % a year;
--   * days_to_expiry is fractional: (expiry - ts) in days, so it reaches 0 at the 08:00 UTC settlement.

-- An earlier version's per-row index lookup, replaced by the union below.
DROP FUNCTION IF EXISTS deribit_ts.index_at(text, text, timestamptz);

-- Every dated future with its index and the perpetual of that index (BTC-PERPETUAL for btc_usd), whose
-- candles and funding history are the fallbacks where the index has no sample at a minute. Where several
-- perpetuals share an index, the one settled in the future's currency wins, then the oldest.
CREATE OR REPLACE VIEW deribit_ts.dated_futures AS
SELECT f.id, f.instrument_name, f.base_currency AS currency, f.price_index, f.creation_ts, f.expiry,
       perp.id AS perpetual_id,
       coalesce(f.creation_ts, '-infinity') AS listed  -- the index sources are read over the future's life only
FROM deribit.instruments f
LEFT JOIN LATERAL (
    SELECT p.id
      FROM deribit.instruments p
     WHERE p.is_perpetual AND p.price_index = f.price_index
     ORDER BY p.settlement_currency IS NOT DISTINCT FROM f.settlement_currency DESC, p.id
     LIMIT 1) perp ON true
WHERE f.kind = 'future' AND NOT f.is_perpetual AND f.expiry IS NOT NULL;

-- Every dated future's one-minute close against its index at that minute. The index comes from an index source
-- only; index_source says which, best first:
--   index           the index history has a sample at that minute (Deribit serves one-minute index history
--                   for the last days only; older history is hourly or daily, so older minutes fall back)
--   funding_index   the perpetual's funding history has a row at that minute (hourly, on the hour): the
--                   exchange's own index at that instant
--   index_prev_hour the index at the start of the minute's hour (index history or funding history): the index
--                   itself, up to 59 minutes stale
-- and NULL where none exists: index_price, basis, basis_pct and annualized_basis_pct are then NULL. The
-- perpetual's close at the same minute is no index (it carries the perpetual's premium, what drives funding): it
-- is in perpetual_price, and the future against it in spread_to_perpetual(_pct).
-- annualized_basis_pct is NULL in the last day before expiry, where dividing by the days left turns a few dollars
-- of basis into thousands of percent a year.
--
-- Why a union: every source is a hypertable, and a filter on ts (and instrument_name) reaches each branch of
-- the UNION ALL as a constant, so each reads only the chunks of that range through its primary key. The stale
-- index is a second, hourly set (the samples on the hour over the future's life: a few thousand rows a year)
-- hashed and joined on date_trunc('hour', ts): a per-row "newest before" lookup paid TimescaleDB's per-row chunk
-- exclusion (about 1 ms a row at a few hundred chunks), and the stale index is needed at most minutes.
CREATE OR REPLACE VIEW deribit.basis_1m AS
SELECT m.instrument_name,
       m.ts,
       m.future_price,
       coalesce(m.index_price, stale.price)                                     AS index_price,
       m.future_price - coalesce(m.index_price, stale.price)                    AS basis,
       100 * (m.future_price / coalesce(m.index_price, stale.price) - 1)        AS basis_pct,
       CASE WHEN m.expiry - m.ts >= interval '1 day'
            THEN 100 * (m.future_price / coalesce(m.index_price, stale.price) - 1) * 365
                 / (extract(epoch FROM m.expiry - m.ts)::double precision / 86400) END AS annualized_basis_pct,
       extract(epoch FROM m.expiry - m.ts)::double precision / 86400            AS days_to_expiry,
       CASE m.source WHEN 1 THEN 'index' WHEN 2 THEN 'funding_index'
           ELSE CASE WHEN stale.price IS NOT NULL THEN 'index_prev_hour' END END AS index_source,
       m.currency,
       m.expiry,
       m.perpetual_price,
       m.future_price - m.perpetual_price                                       AS spread_to_perpetual,
       100 * (m.future_price / m.perpetual_price - 1)                           AS spread_to_perpetual_pct
FROM (
    SELECT s.instrument_name, s.ts, s.currency, s.expiry,
           max(s.price) FILTER (WHERE s.source = 0)                                   AS future_price,
           (array_agg(s.price ORDER BY s.source) FILTER (WHERE s.source IN (1, 2)))[1] AS index_price,
           min(s.source) FILTER (WHERE s.source IN (1, 2))                            AS source,
           max(s.price) FILTER (WHERE s.source = 3)                                   AS perpetual_price
      FROM (
        SELECT f.instrument_name, c.ts, f.currency, f.expiry, c.close AS price, 0 AS source
          FROM deribit_ts.dated_futures f
          JOIN deribit.candles_1m c ON c.instrument_id = f.id AND c.ts < f.expiry
        UNION ALL
        SELECT f.instrument_name, x.ts, f.currency, f.expiry, x.price, 1
          FROM deribit_ts.dated_futures f
          JOIN deribit.index_price_history x ON x.index_name = f.price_index
                                         AND x.ts >= f.listed AND x.ts < f.expiry
        UNION ALL
        SELECT f.instrument_name, fr.ts, f.currency, f.expiry, fr.index_price, 2
          FROM deribit_ts.dated_futures f
          JOIN deribit.funding_rate_history fr ON fr.instrument_id = f.perpetual_id
                                          AND fr.ts >= f.listed AND fr.ts < f.expiry
         WHERE fr.index_price > 0
        UNION ALL
        SELECT f.instrument_name, pc.ts, f.currency, f.expiry, pc.close, 3
          FROM deribit_ts.dated_futures f
          JOIN deribit.candles_1m pc ON pc.instrument_id = f.perpetual_id AND pc.ts >= f.listed AND pc.ts < f.expiry
      ) s
     GROUP BY s.instrument_name, s.ts, s.currency, s.expiry
    HAVING count(*) FILTER (WHERE s.source = 0) > 0
) m
-- The index at the start of each hour of the future's life (index history first), for the minutes without one.
LEFT JOIN (
    SELECT h.instrument_name, h.ts, (array_agg(h.price ORDER BY h.source))[1] AS price
      FROM (
        SELECT f.instrument_name, x.ts, x.price, 1 AS source
          FROM deribit_ts.dated_futures f
          JOIN deribit.index_price_history x ON x.index_name = f.price_index
                                         AND x.ts >= f.listed - interval '1 hour' AND x.ts < f.expiry
         WHERE x.ts = date_trunc('hour', x.ts)
        UNION ALL
        SELECT f.instrument_name, fr.ts, fr.index_price, 2
          FROM deribit_ts.dated_futures f
          JOIN deribit.funding_rate_history fr ON fr.instrument_id = f.perpetual_id
                                          AND fr.ts >= f.listed - interval '1 hour' AND fr.ts < f.expiry
         WHERE fr.index_price > 0 AND fr.ts = date_trunc('hour', fr.ts)
      ) h
     GROUP BY h.instrument_name, h.ts
) stale ON m.source IS NULL AND stale.instrument_name = m.instrument_name AND stale.ts = date_trunc('hour', m.ts);
-- An earlier version's stale-index lookup, per row (nothing of ours uses it any more).
DROP FUNCTION IF EXISTS deribit_ts.index_before(text, integer, timestamptz);

-- The term structure once an hour: at every full hour of each dated future's life where the index is known on
-- the hour (the index history's sample, else the funding history's index, both on the hour), the future's price
-- at that instant: the close of its last one-minute candle that closed at or before the hour, within the hour
-- before it (its hourly bar's close: a future that did not trade in that hour has no row). Annualized basis NULL
-- in the last day before expiry, as in basis_1m.
--
-- deribit_ts.basis_ts_hours(from, until) computes the rows of the hours in [from, until): the hourly rollup
-- (candles_1h, one row per future and hour) joined to the index samples on the hour (grouped per index and hour,
-- so the planner hashes them). An SQL function the planner inlines: its bounds reach every hypertable as
-- constants when they are. A NULL `from` is the oldest day marked in basis_ts_dirty (the view's on-read part;
-- a sub-select passed as an argument would stop the planner from inlining the function).
CREATE OR REPLACE FUNCTION deribit_ts.basis_ts_hours(p_from timestamptz, p_until timestamptz)
RETURNS TABLE (instrument_id integer, ts timestamptz, future_price double precision, index_price double precision,
               index_source smallint)
LANGUAGE sql STABLE AS $$
SELECT f.id, h.ts, b.close, h.price, h.source::smallint
  FROM deribit_ts.dated_futures f
  JOIN deribit.candles_1h b ON b.instrument_id = f.id
                           AND b.ts >= f.listed - interval '1 hour' AND b.ts < f.expiry - interval '1 hour'
                           AND b.ts >= coalesce(p_from, (SELECT min(d.day) FROM deribit_ts.basis_ts_dirty d))
                                       - interval '1 hour'
                           AND b.ts < p_until - interval '1 hour'
  -- every index's samples on the hour: its own history first, else a perpetual's funding record (the exchange's
  -- index then; perpetuals of one index agree on it)
  JOIN (
      SELECT s.index_name, s.ts, (array_agg(s.price ORDER BY s.source, s.perpetual))[1] AS price,
             min(s.source) AS source
        FROM (
          SELECT x.index_name, x.ts, x.price, 1 AS source, 0 AS perpetual
            FROM deribit.index_price_history x
           WHERE x.ts = date_trunc('hour', x.ts) AND x.ts < p_until
             AND x.ts >= coalesce(p_from, (SELECT min(d.day) FROM deribit_ts.basis_ts_dirty d))
          UNION ALL
          SELECT p.price_index, fr.ts, fr.index_price, 2, p.id
            FROM deribit.funding_rate_history fr
            JOIN deribit.instruments p ON p.id = fr.instrument_id
           WHERE p.is_perpetual AND fr.index_price > 0 AND fr.ts = date_trunc('hour', fr.ts)
             AND fr.ts >= coalesce(p_from, (SELECT min(d.day) FROM deribit_ts.basis_ts_dirty d)) AND fr.ts < p_until
        ) s
       GROUP BY s.index_name, s.ts
  ) h ON h.index_name = f.price_index AND h.ts = b.ts + interval '1 hour'
$$;

-- Store the term structure of every UTC day marked in basis_ts_dirty (0048: every write to the candles, the index
-- history or the funding history marks the days it changes), and consume the marks. Called by
-- deribit_ts.refresh_rollups after the rollups are up to date (its hourly bars are then materialized). The marks
-- deleted are those committed before this statement began; later ones stay for the next refresh. Consecutive
-- days are worked as one range, each statement bounded by literal times (the planner reads only the chunks of
-- that range). Returns {"days": n, "rows": rows stored}.
CREATE OR REPLACE FUNCTION deribit_ts.refresh_basis_term_structure()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    days integer := 0;
    stored bigint := 0;
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.refresh_basis_term_structure'));
    FOR r IN
        WITH consumed AS (DELETE FROM deribit_ts.basis_ts_dirty RETURNING day),
             marked AS (SELECT DISTINCT day FROM consumed),
             -- runs of consecutive days (gaps and islands)
             runs AS (SELECT day, day - (row_number() OVER (ORDER BY day))::integer * INTERVAL '1 day' AS run
                        FROM marked)
        SELECT min(day) AS lo, max(day) + INTERVAL '1 day' AS hi, count(*)::integer AS n FROM runs GROUP BY run
    LOOP
        DELETE FROM deribit_ts.basis_ts_hourly WHERE ts >= r.lo AND ts < r.hi;
        EXECUTE format('INSERT INTO deribit_ts.basis_ts_hourly SELECT * FROM deribit_ts.basis_ts_hours(%L, %L)',
                       r.lo, r.hi);
        GET DIAGNOSTICS n = ROW_COUNT;
        stored := stored + n;
        days := days + r.n;
    END LOOP;
    RETURN jsonb_build_object('days', days, 'rows', stored);
END
$$;

-- The marked days' rows, computed on read from the oldest marked day on (none when nothing is marked): a
-- PL/pgSQL function, so its query is planned only when days are marked, with that day as a literal (the planner
-- then reads only the chunks from it on). Inlined into the view, the planner had to consider every chunk of the
-- candles on each read, marks or not (120-190 ms of planning at 23 million candles). SECURITY DEFINER: the view's
-- readers (deribit_reader) need no rights on deribit_ts; it returns only what the view shows.
CREATE OR REPLACE FUNCTION deribit_ts.basis_ts_marked()
RETURNS TABLE (instrument_id integer, ts timestamptz, future_price double precision, index_price double precision,
               index_source smallint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    oldest timestamptz := (SELECT min(d.day) FROM deribit_ts.basis_ts_dirty d);
BEGIN
    IF oldest IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT c.instrument_id, c.ts, c.future_price, c.index_price, c.index_source
           FROM deribit_ts.basis_ts_hours(%L, %L) c
          WHERE EXISTS (SELECT 1 FROM deribit_ts.basis_ts_dirty d
                         WHERE d.day = date_trunc(%L, c.ts, %L))', oldest, 'infinity', 'day', 'UTC');
END
$$;

-- The view: the stored hours of every day not marked since the last refresh, and the marked days (the newest
-- hours, a past day re-loaded) computed on read from the oldest marked day on. After a refresh that is the last
-- day or so; a currency's whole history is then a read of its stored rows (the stored hours before the oldest
-- marked day pass without a look at the marks). The futures are read from deribit.instruments directly:
-- dated_futures' perpetual (unused here) was looked up for every row.
CREATE OR REPLACE VIEW deribit.basis_term_structure AS
SELECT f.base_currency                                                         AS currency,
       t.ts,
       f.expiry,
       extract(epoch FROM f.expiry - t.ts)::double precision / 86400           AS days_to_expiry,
       CASE WHEN f.expiry - t.ts >= interval '1 day'
            THEN 100 * (t.future_price / t.index_price - 1) * 365
                 / (extract(epoch FROM f.expiry - t.ts)::double precision / 86400)
       END                                                                     AS annualized_basis_pct,
       f.instrument_name,
       t.future_price,
       t.index_price,
       100 * (t.future_price / t.index_price - 1)                              AS basis_pct,
       CASE t.index_source WHEN 1 THEN 'index' ELSE 'funding_index' END        AS index_source
FROM deribit.instruments f
JOIN (
    SELECT k.instrument_id, k.ts, k.future_price, k.index_price, k.index_source
      FROM deribit_ts.basis_ts_hourly k
     WHERE k.ts < (SELECT coalesce(min(d.day), 'infinity') FROM deribit_ts.basis_ts_dirty d)
        OR NOT EXISTS (SELECT 1 FROM deribit_ts.basis_ts_dirty d WHERE d.day = time_bucket(interval '1 day', k.ts))
    UNION ALL
    SELECT c.instrument_id, c.ts, c.future_price, c.index_price, c.index_source FROM deribit_ts.basis_ts_marked() c
) t ON t.instrument_id = f.id AND t.ts >= coalesce(f.creation_ts, '-infinity') AND t.ts < f.expiry
WHERE f.kind = 'future' AND NOT f.is_perpetual AND f.expiry IS NOT NULL;
-- An earlier version's term structure walked the hours through basis_1m at one minute (nothing uses it any more).
DROP FUNCTION IF EXISTS deribit_ts.basis_at(timestamptz);

-- Funding of perpetuals as an annual rate, in percent: interest_1h (the funding of one hour, a fraction)
-- * 24 * 365 * 100, simple. apr_1d and apr_7d average the hourly rows of the trailing 24 hours and
-- 7 days (ending with this row) and annualize the same way; an hour missing from the history (an
-- outage, or the first hours of a perpetual's history) is left out of the average, not counted as zero, and
-- hours_1d / hours_7d say how many hours each mean holds (1 on the first row of a history: one hour's rate).
--
-- deribit_ts.funding_apr_rows(from, until) computes the rows of the records in [from, until) with window
-- aggregates over the records from 7 days before `from` (one pass, in proportion to the rows). The refresh below
-- stores them in deribit_ts.funding_apr_kept (0051); the view reads those, and computes on read only the UTC days
-- marked in funding_apr_dirty since the last refresh, each row's means read from the primary key (at most 168
-- rows of one perpetual), so a filter on instrument_name and ts costs in proportion to the rows it keeps either
-- way. (A window aggregate in the view ran over the perpetual's whole history before the filter could apply.)
CREATE OR REPLACE FUNCTION deribit_ts.funding_apr_rows(p_from timestamptz, p_until timestamptz)
RETURNS TABLE (instrument_id integer, ts timestamptz, interest_1h double precision, mean_1d double precision,
               mean_7d double precision, hours_1d bigint, hours_7d bigint)
LANGUAGE sql STABLE AS $$
SELECT w.instrument_id, w.ts, w.interest_1h, w.mean_1d, w.mean_7d, w.hours_1d, w.hours_7d
  FROM (SELECT f.instrument_id, f.ts, f.interest_1h,
               -- (ts - 24 h, ts]: timestamps are whole microseconds
               avg(f.interest_1h) OVER day_before   AS mean_1d,
               avg(f.interest_1h) OVER week_before  AS mean_7d,
               count(f.interest_1h) OVER day_before AS hours_1d,
               count(f.interest_1h) OVER week_before AS hours_7d
          FROM deribit.funding_rate_history f
         WHERE f.ts >= p_from - interval '168 hours' AND f.ts < p_until
        WINDOW day_before AS (PARTITION BY f.instrument_id ORDER BY f.ts
                              RANGE BETWEEN interval '23:59:59.999999' PRECEDING AND CURRENT ROW),
               week_before AS (PARTITION BY f.instrument_id ORDER BY f.ts
                               RANGE BETWEEN interval '167:59:59.999999' PRECEDING AND CURRENT ROW)) w
 WHERE w.ts >= p_from
$$;

-- Store the rows of every UTC day marked in funding_apr_dirty (0051: every write to the funding history marks
-- the days whose means it changes), and consume the marks; as refresh_basis_term_structure does. Called by
-- deribit_ts.refresh_rollups. Returns {"days": n, "rows": rows stored}.
CREATE OR REPLACE FUNCTION deribit_ts.refresh_funding_apr()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    days integer := 0;
    stored bigint := 0;
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.refresh_funding_apr'));
    FOR r IN
        WITH consumed AS (DELETE FROM deribit_ts.funding_apr_dirty RETURNING day),
             marked AS (SELECT DISTINCT day FROM consumed),
             runs AS (SELECT day, day - (row_number() OVER (ORDER BY day))::integer * INTERVAL '1 day' AS run
                        FROM marked)
        SELECT min(day) AS lo, max(day) + INTERVAL '1 day' AS hi, count(*)::integer AS n FROM runs GROUP BY run
    LOOP
        DELETE FROM deribit_ts.funding_apr_kept WHERE ts >= r.lo AND ts < r.hi;
        EXECUTE format('INSERT INTO deribit_ts.funding_apr_kept SELECT * FROM deribit_ts.funding_apr_rows(%L, %L)',
                       r.lo, r.hi);
        GET DIAGNOSTICS n = ROW_COUNT;
        stored := stored + n;
        days := days + r.n;
    END LOOP;
    RETURN jsonb_build_object('days', days, 'rows', stored);
END
$$;

CREATE OR REPLACE VIEW deribit.funding_apr AS
SELECT i.instrument_name,
       k.ts,
       k.interest_1h * 24 * 365 * 100 AS apr,
       k.mean_1d * 24 * 365 * 100     AS apr_1d,
       k.mean_7d * 24 * 365 * 100     AS apr_7d,
       k.hours_1d,
       k.hours_7d
FROM (
    SELECT s.instrument_id, s.ts, s.interest_1h, s.mean_1d, s.mean_7d, s.hours_1d, s.hours_7d
      FROM deribit_ts.funding_apr_kept s
     WHERE NOT EXISTS (SELECT 1 FROM deribit_ts.funding_apr_dirty d WHERE d.day = time_bucket(interval '1 day', s.ts))
    UNION ALL
    SELECT f.instrument_id, f.ts, f.interest_1h, w.mean_1d, w.mean_7d, w.hours_1d, w.hours_7d
      FROM deribit.funding_rate_history f
     CROSS JOIN LATERAL (
        SELECT avg(p.interest_1h) FILTER (WHERE p.ts > f.ts - interval '24 hours') AS mean_1d,
               avg(p.interest_1h)                                                 AS mean_7d,
               count(p.interest_1h) FILTER (WHERE p.ts > f.ts - interval '24 hours') AS hours_1d,
               count(p.interest_1h)                                               AS hours_7d
          FROM deribit.funding_rate_history p
         WHERE p.instrument_id = f.instrument_id AND p.ts > f.ts - interval '168 hours' AND p.ts <= f.ts
     ) w
     WHERE EXISTS (SELECT 1 FROM deribit_ts.funding_apr_dirty d WHERE d.day = time_bucket(interval '1 day', f.ts))
) k
JOIN deribit.instruments i ON i.id = k.instrument_id;
