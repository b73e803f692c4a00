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

-- The newest index sample (index or funding history) in the hour before `p_ts`: the last fallback of
-- basis_1m. PL/pgSQL so that its plan is made once per session, and only when a row needs it.
CREATE OR REPLACE FUNCTION deribit_ts.index_before(p_index text, p_perpetual_id integer, p_ts timestamptz)
RETURNS double precision
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT newest.price
              FROM (SELECT x.ts, x.price
                      FROM deribit.index_price_history x
                     WHERE x.index_name = p_index AND x.ts < p_ts AND x.ts > p_ts - interval '1 hour'
                    UNION ALL
                    SELECT fr.ts, fr.index_price
                      FROM deribit.funding_rate_history fr
                     WHERE fr.instrument_id = p_perpetual_id AND fr.ts < p_ts AND fr.ts > p_ts - interval '1 hour'
                       AND fr.index_price > 0) newest
             ORDER BY newest.ts DESC
             LIMIT 1);
END;
$$;

-- Every dated future's one-minute close against its index at that minute. index_source says which price
-- stood for the index, best first:
--   index           the index history has a sample at that minute (Deribit serves one-minute index history
--                   for the last days only; older history is hourly or daily, so older minutes fall back)
--   funding_index   the perpetual's funding history has a row at that minute (hourly, on the hour): the
--                   exchange's own index at that instant
--   perpetual       the perpetual's one-minute close: the same minute, but it carries the perpetual's premium
--                   over the index (what drives funding; typically a few basis points)
--   index_prev_hour the newest index sample (index or funding history) of the hour before: the index itself,
--                   up to 59 minutes stale (where no perpetual candles were loaded)
-- and NULL where none exists.
--
-- Why a union: every source is a hypertable, and a filter on ts (and instrument_name) reaches each branch of
-- the UNION ALL as a constant, so each reads only the chunks of that range through its primary key. A join
-- or a per-row lookup would either read every chunk or pay TimescaleDB's per-row chunk exclusion (about 1 ms
-- a row at a few hundred chunks). The stale fallback is a per-row lookup, taken only by rows without any other.
CREATE OR REPLACE VIEW deribit.basis_1m AS
SELECT m.instrument_name,
       m.ts,
       m.future_price,
       coalesce(m.index_price, prev.price)                                      AS index_price,
       m.future_price - coalesce(m.index_price, prev.price)                     AS basis,
       100 * (m.future_price / coalesce(m.index_price, prev.price) - 1)         AS basis_pct,
       100 * (m.future_price / coalesce(m.index_price, prev.price) - 1) * 365
           / (extract(epoch FROM m.expiry - m.ts) / 86400)                      AS annualized_basis_pct,
       extract(epoch FROM m.expiry - m.ts)::double precision / 86400            AS days_to_expiry,
       CASE m.source WHEN 1 THEN 'index' WHEN 2 THEN 'funding_index' WHEN 3 THEN 'perpetual'
           ELSE CASE WHEN prev.price IS NOT NULL THEN 'index_prev_hour' END END AS index_source,
       m.currency,
       m.expiry
FROM (
    SELECT s.instrument_name, s.ts, s.currency, s.expiry,
           max(s.price) FILTER (WHERE s.source = 0)                                     AS future_price,
           (array_agg(s.price ORDER BY s.source) FILTER (WHERE s.source > 0))[1]       AS index_price,
           min(s.source) FILTER (WHERE s.source > 0)                                    AS source,
           max(s.price_index) AS price_index, max(s.perpetual_id) AS perpetual_id
      FROM (
        SELECT f.instrument_name, c.ts, f.currency, f.expiry, c.close AS price, 0 AS source,
               f.price_index, f.perpetual_id
          FROM deribit_ts.dated_futures f
          JOIN deribit.candles_1m c ON c.instrument_id = f.id AND c.ts < f.expiry
        UNION ALL
        SELECT f.instrument_name, x.ts, f.currency, f.expiry, x.price, 1, NULL, NULL
          FROM deribit_ts.dated_futures f
          JOIN deribit.index_price_history x ON x.index_name = f.price_index
                                         AND x.ts >= f.listed AND x.ts < f.expiry
        UNION ALL
        SELECT f.instrument_name, fr.ts, f.currency, f.expiry, fr.index_price, 2, NULL, NULL
          FROM deribit_ts.dated_futures f
          JOIN deribit.funding_rate_history fr ON fr.instrument_id = f.perpetual_id
                                          AND fr.ts >= f.listed AND fr.ts < f.expiry
         WHERE fr.index_price > 0
        UNION ALL
        SELECT f.instrument_name, pc.ts, f.currency, f.expiry, pc.close, 3, NULL, NULL
          FROM deribit_ts.dated_futures f
          JOIN deribit.candles_1m pc ON pc.instrument_id = f.perpetual_id AND pc.ts >= f.listed AND pc.ts < f.expiry
      ) s
     GROUP BY s.instrument_name, s.ts, s.currency, s.expiry
    HAVING count(*) FILTER (WHERE s.source = 0) > 0
) m
LEFT JOIN LATERAL (
    SELECT deribit_ts.index_before(m.price_index, m.perpetual_id, m.ts) AS price
     WHERE m.source IS NULL
    OFFSET 0  -- evaluated once per row, not once per use of prev.price
) prev ON true;

-- basis_1m at one minute, for every future live then: the term structure calls it once per hour it walks
-- through. A PL/pgSQL function keeps one plan per session, in which TimescaleDB picks each hypertable's
-- chunk for the minute when the plan starts (startup exclusion) instead of planning every hour anew.
CREATE OR REPLACE FUNCTION deribit_ts.basis_at(p_ts timestamptz)
RETURNS TABLE (instrument_name text, ts timestamptz, future_price double precision, index_price double precision,
               basis double precision, basis_pct double precision, annualized_basis_pct double precision,
               days_to_expiry double precision, index_source text, currency text, expiry timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT * FROM deribit.basis_1m b WHERE b.ts = p_ts AND b.expiry > p_ts;
END;
$$;

-- The term structure once an hour: at every full hour, each dated future live then with a candle at that
-- minute, and its basis (from basis_1m). On the hour is where the funding history gives the exchange's own
-- index, so the term structure rests on the index itself over the whole history, not on a fallback.
--
-- The hours run newest first, from the newest candle fetched (deribit_ts.watermarks; without any, the
-- latest expiry or now) back to the first future's listing. They are sorted in a subquery so that
-- `ORDER BY ts DESC LIMIT n` walks back from the newest hour and stops after n rows.
CREATE OR REPLACE VIEW deribit.basis_term_structure AS
SELECT b.currency,
       h.ts,
       b.expiry,
       b.days_to_expiry,
       b.annualized_basis_pct,
       b.instrument_name,
       b.future_price,
       b.index_price,
       b.basis_pct,
       b.index_source
FROM (SELECT hours.ts
        FROM generate_series(
                 (SELECT date_trunc('hour', least(now(), coalesce(
                             (SELECT max(w.covered_until) FROM deribit_ts.watermarks w WHERE w.dataset = 'candles'),
                             max(f.expiry))))
                    FROM deribit_ts.dated_futures f),
                 (SELECT date_trunc('hour', min(f.creation_ts)) FROM deribit_ts.dated_futures f),
                 interval '-1 hour') AS hours (ts)
       ORDER BY hours.ts DESC) h
CROSS JOIN LATERAL deribit_ts.basis_at(h.ts) b;

-- Funding of perpetuals as an annual rate, in percent: interest_1h (the funding of one hour, a fraction)
-- * 24 * 365 * 100, simple. apr_1d and apr_7d average the hourly rows of the trailing 24 hours and
-- 7 days (ending with this row) and annualize the same way; an hour missing from the history (an
-- outage) is left out of the average, not counted as zero.
--
-- The trailing means are window aggregates over each perpetual's whole history (a filter on ts cannot
-- reach below a window that looks back). They average interest_1h in fixed point (units of 1e-15, far
-- below Deribit's precision): avg(bigint) can remove the row leaving the frame, so each row costs O(1),
-- where avg(double precision) re-adds the whole 168-row frame for every row (4x slower, measured).
CREATE OR REPLACE VIEW deribit.funding_apr AS
SELECT i.instrument_name,
       f.ts,
       f.interest_1h * 24 * 365 * 100 AS apr,
       (avg(round(f.interest_1h * 1e15)::bigint)
            OVER (PARTITION BY i.instrument_name ORDER BY f.ts
                  RANGE BETWEEN interval '23 hours' PRECEDING AND CURRENT ROW) * 24 * 365 * 100 / 1e15)::float8
           AS apr_1d,
       (avg(round(f.interest_1h * 1e15)::bigint)
            OVER (PARTITION BY i.instrument_name ORDER BY f.ts
                  RANGE BETWEEN interval '167 hours' PRECEDING AND CURRENT ROW) * 24 * 365 * 100 / 1e15)::float8
           AS apr_7d
FROM deribit.funding_rate_history f
JOIN deribit.instruments i ON i.id = f.instrument_id;
