-- Basis of dated futures against their index, the basis term structure, and funding as an APR.
--
-- Conventions (all three views):
--   * percentages are percent (1.5 = 1.5 %), as Deribit quotes them;
--   * annualized figures are simple, not compounded, on a 365-day year: a basis of b % with d days to
--     expiry is b * 365 / d % a year; an hourly funding rate r is r * 24 * 365 * 100 % a year;
--   * days_to_expiry is fractional: (expiry - ts) in days, so it reaches 0 at the 08:00 UTC settlement.

DROP VIEW IF EXISTS deribit.basis_term_structure CASCADE;
DROP VIEW IF EXISTS deribit.basis_1m CASCADE;
DROP FUNCTION IF EXISTS deribit_ts.index_at(text, text, timestamptz) CASCADE;

-- The index price of `p_index` at minute `p_ts`, and where it came from, best source first:
--   index          the index history has a sample at that minute (one-minute history covers the last
--                  days only: Deribit serves older index history hourly or daily)
--   funding_index  the perpetual's funding history has a row at that minute (hourly, on the hour): the
--                  exchange's own index at that instant
--   perpetual      the perpetual's one-minute close: a price at the same minute, but it carries the
--                  perpetual's premium over the index (the funding rate's driver, typically a few bp)
--   index_prev_hour the newest index sample (index or funding history) of the hour before: the index
--                  itself, up to 59 minutes stale
-- The perpetual is the one of the same price index (BTC-PERPETUAL for btc_usd); where several share an
-- index, the one settled in the future's currency wins, then the oldest. Nothing when no source has a
-- price. Each branch is one primary-key probe.
CREATE FUNCTION deribit_ts.index_at(p_index text, p_settlement text, p_ts timestamptz)
RETURNS TABLE (index_price double precision, index_source text)
LANGUAGE sql STABLE AS $$
    WITH perp AS (
        SELECT p.id
          FROM deribit.instruments p
         WHERE p.is_perpetual AND p.price_index = p_index
         ORDER BY p.settlement_currency IS NOT DISTINCT FROM p_settlement DESC, p.id
         LIMIT 1
    )
    SELECT found.price, found.source
      FROM (
        SELECT x.price, 'index' AS source, 1 AS rank
          FROM deribit.index_price_history x
         WHERE x.index_name = p_index AND x.ts = p_ts
        UNION ALL
        SELECT fr.index_price, 'funding_index', 2
          FROM deribit.funding_rate_history fr, perp
         WHERE fr.instrument_id = perp.id AND fr.ts = p_ts AND fr.index_price > 0
        UNION ALL
        SELECT pc.close, 'perpetual', 3
          FROM deribit.candles_1m pc, perp
         WHERE pc.instrument_id = perp.id AND pc.ts = p_ts
        UNION ALL
        (SELECT prev.price, 'index_prev_hour', 4
           FROM (SELECT x.ts, x.price
                   FROM deribit.index_price_history x
                  WHERE x.index_name = p_index AND x.ts < p_ts AND x.ts > p_ts - interval '1 hour'
                 UNION ALL
                 SELECT fr.ts, fr.index_price
                   FROM deribit.funding_rate_history fr, perp
                  WHERE fr.instrument_id = perp.id AND fr.ts < p_ts AND fr.ts > p_ts - interval '1 hour'
                    AND fr.index_price > 0) prev
          ORDER BY prev.ts DESC
          LIMIT 1)
      ) found
     ORDER BY found.rank
     LIMIT 1
$$;
COMMENT ON FUNCTION deribit_ts.index_at(text, text, timestamptz) IS
    'Index price of an index at a minute, from the best source that has it (index, funding_index, perpetual, index_prev_hour)';

-- Every dated future's one-minute close against its index at that minute.
CREATE VIEW deribit.basis_1m AS
SELECT f.instrument_name,
       c.ts,
       c.close                                                        AS future_price,
       ix.index_price,
       c.close - ix.index_price                                       AS basis,
       100 * (c.close / ix.index_price - 1)                           AS basis_pct,
       100 * (c.close / ix.index_price - 1) * 365
           / (extract(epoch FROM f.expiry - c.ts) / 86400)            AS annualized_basis_pct,
       extract(epoch FROM f.expiry - c.ts)::double precision / 86400  AS days_to_expiry,
       ix.index_source,
       f.base_currency                                                AS currency,
       f.expiry
FROM deribit.instruments f
JOIN deribit.candles_1m c ON c.instrument_id = f.id AND c.ts < f.expiry
LEFT JOIN LATERAL deribit_ts.index_at(f.price_index, f.settlement_currency, c.ts) ix ON true
WHERE f.kind = 'future' AND NOT f.is_perpetual AND f.expiry IS NOT NULL;
COMMENT ON VIEW deribit.basis_1m IS
    'Per dated future and minute: close vs index (basis, basis_pct, simple annualized on 365 days); index_source names the index used: index, funding_index, perpetual (its close, premium included) or index_prev_hour; NULL where none exists';

-- The term structure once an hour: at every full hour, each future of the currency live then, with its
-- basis at that minute (from basis_1m). On the hour is where the funding history gives the exchange's own
-- index, so the term structure uses the index itself over the whole history, not a fallback.
--
-- The hours run newest first from the newest candle fetched (deribit_ts.watermarks, else now) back to the
-- first future's listing; they are sorted in a subquery so that `ORDER BY ts DESC LIMIT n` walks back from
-- the newest hour and stops after n rows instead of computing all history.
CREATE VIEW deribit.basis_term_structure AS
SELECT f.base_currency                                                AS currency,
       h.ts,
       f.expiry,
       extract(epoch FROM f.expiry - h.ts)::double precision / 86400  AS days_to_expiry,
       100 * (c.close / ix.index_price - 1) * 365
           / (extract(epoch FROM f.expiry - h.ts) / 86400)            AS annualized_basis_pct,
       f.instrument_name,
       c.close                                                        AS future_price,
       ix.index_price,
       100 * (c.close / ix.index_price - 1)                           AS basis_pct,
       ix.index_source
FROM (SELECT hours.ts
        FROM generate_series(
                 (SELECT date_trunc('hour', least(now(), coalesce(max(w.covered_until), now())))
                    FROM deribit_ts.watermarks w WHERE w.dataset = 'candles'),
                 (SELECT date_trunc('hour', min(i.creation_ts))
                    FROM deribit.instruments i WHERE i.kind = 'future' AND NOT i.is_perpetual),
                 interval '-1 hour') AS hours (ts)
       ORDER BY hours.ts DESC) h
JOIN deribit.instruments f
  ON f.kind = 'future' AND NOT f.is_perpetual AND f.expiry > h.ts AND f.creation_ts <= h.ts
JOIN deribit.candles_1m c ON c.instrument_id = f.id AND c.ts = h.ts
LEFT JOIN LATERAL deribit_ts.index_at(f.price_index, f.settlement_currency, h.ts) ix ON true;
COMMENT ON VIEW deribit.basis_term_structure IS
    'Hourly (on the hour) annualized basis of every live dated future per currency, newest first with ORDER BY ts DESC LIMIT n';

-- Funding of perpetuals as an annual rate, in percent: interest_1h (the funding of one hour, a fraction)
-- * 24 * 365 * 100, simple. apr_1d and apr_7d average the hourly rows of the trailing 24 hours and
-- 7 days (ending with this row) and annualize the same way; an hour missing from the history (an
-- outage) is left out of the average, not counted as zero.
DROP VIEW IF EXISTS deribit.funding_apr CASCADE;
CREATE VIEW deribit.funding_apr AS
SELECT i.instrument_name,
       f.ts,
       f.interest_1h * 24 * 365 * 100 AS apr,
       avg(f.interest_1h) OVER (PARTITION BY i.instrument_name ORDER BY f.ts
                                RANGE BETWEEN interval '23 hours' PRECEDING AND CURRENT ROW) * 24 * 365 * 100 AS apr_1d,
       avg(f.interest_1h) OVER (PARTITION BY i.instrument_name ORDER BY f.ts
                                RANGE BETWEEN interval '167 hours' PRECEDING AND CURRENT ROW) * 24 * 365 * 100 AS apr_7d
FROM deribit.funding_rate_history f
JOIN deribit.instruments i ON i.id = f.instrument_id;
COMMENT ON VIEW deribit.funding_apr IS
    'Funding of perpetuals annualized in percent: apr = interest_1h * 8760 * 100; apr_1d / apr_7d = the same of the trailing 24 h / 7 d mean';
