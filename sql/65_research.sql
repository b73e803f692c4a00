-- Research views: constant-maturity implied volatility, realized volatility and the volatility risk premium, open
-- interest, max pain and the put/call ratio, futures settlement, the perpetual's premium and funding carry, and
-- the SVI fit of every smile. Units as everywhere else: IVs and volatilities in percent (like DVOL), prices in
-- USD, open interest in contracts (base currency), days as fractional days, T in 365-day years.
--
-- What would be recomputed from millions of rows on every read is kept in tables of migration 0040 instead:
-- per snapshot round (written with the round, see deribit_ts/ingest/round_research.py, and by `deribit-ts
-- refresh` for older rounds) and per UTC day of candles (by `deribit-ts refresh`).

-- The constant-maturity rows of one round and currency from its option_round_expiries rows (replaced).
CREATE OR REPLACE FUNCTION deribit_ts.interpolate_option_round_tenors(p_currency text, p_ts timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deribit_ts.option_round_tenors WHERE currency = p_currency AND ts = p_ts;
    INSERT INTO deribit_ts.option_round_tenors (currency, tenor_days, ts, atm_iv, rr25, bf25)
    SELECT p_currency, t.tenor, p_ts,
           CASE WHEN a2.days = a1.days THEN a1.iv
                ELSE sqrt((a1.iv * a1.iv * a1.days
                           + (a2.iv * a2.iv * a2.days - a1.iv * a1.iv * a1.days)
                             * (t.tenor - a1.days) / (a2.days - a1.days)) / t.tenor) END,
           CASE WHEN s2.days = s1.days THEN s1.rr25
                ELSE s1.rr25 + (s2.rr25 - s1.rr25) * (t.tenor - s1.days) / (s2.days - s1.days) END,
           CASE WHEN s2.days = s1.days THEN s1.bf25
                ELSE s1.bf25 + (s2.bf25 - s1.bf25) * (t.tenor - s1.days) / (s2.days - s1.days) END
      FROM unnest(ARRAY[7, 14, 30, 60, 90, 180]) AS t (tenor)
      LEFT JOIN LATERAL (SELECT e.days_to_expiry AS days, e.atm_iv AS iv FROM deribit_ts.option_round_expiries e
                          WHERE e.currency = p_currency AND e.ts = p_ts AND e.atm_iv > 0
                            AND e.days_to_expiry <= t.tenor
                          ORDER BY e.days_to_expiry DESC LIMIT 1) a1 ON true
      LEFT JOIN LATERAL (SELECT e.days_to_expiry AS days, e.atm_iv AS iv FROM deribit_ts.option_round_expiries e
                          WHERE e.currency = p_currency AND e.ts = p_ts AND e.atm_iv > 0
                            AND e.days_to_expiry >= t.tenor
                          ORDER BY e.days_to_expiry LIMIT 1) a2 ON true
      LEFT JOIN LATERAL (SELECT e.days_to_expiry AS days, e.rr25, e.bf25 FROM deribit_ts.option_round_expiries e
                          WHERE e.currency = p_currency AND e.ts = p_ts AND e.rr25 IS NOT NULL
                            AND e.bf25 IS NOT NULL AND e.days_to_expiry <= t.tenor
                          ORDER BY e.days_to_expiry DESC LIMIT 1) s1 ON true
      LEFT JOIN LATERAL (SELECT e.days_to_expiry AS days, e.rr25, e.bf25 FROM deribit_ts.option_round_expiries e
                          WHERE e.currency = p_currency AND e.ts = p_ts AND e.rr25 IS NOT NULL
                            AND e.bf25 IS NOT NULL AND e.days_to_expiry >= t.tenor
                          ORDER BY e.days_to_expiry LIMIT 1) s2 ON true;
END
$$;

-- The research rows of one snapshot round and currency, from the round's own rows: per live expiry its ATM IV
-- and 25-delta skew (the views deribit.iv_term_structure and deribit.iv_skew at that round), open interest, max
-- pain; then the constant-maturity tenors interpolated from them. Idempotent: the round's rows are replaced.
--
-- Max pain: the strike K*, among the expiry's listed strikes, at which settling would pay option holders the
-- least: sum over calls of oi * max(K* - K, 0) plus over puts of oi * max(K - K*, 0), in USD (inverse options pay
-- that USD value in coin); the lowest such strike on a tie; NULL without open interest.
--
-- Constant maturity, per tenor of 7, 14, 30, 60, 90, 180 days: the two expiries around the tenor (the longest at
-- or before it, the shortest at or after it) among those with the quantity; ATM IV linear in total variance
-- iv^2 * T between them, rr25 and bf25 linear in T. An expiry exactly at the tenor is taken as is; a tenor before
-- the first or after the last such expiry is NULL (no extrapolation).
CREATE OR REPLACE FUNCTION deribit_ts.summarize_option_round(p_currency text, p_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    expiries integer;
BEGIN
    DELETE FROM deribit_ts.option_round_expiries WHERE currency = p_currency AND ts = p_ts;

    INSERT INTO deribit_ts.option_round_expiries (currency, ts, expiry, days_to_expiry, atm_iv, rr25, bf25, call_oi,
                                                 put_oi, call_oi_usd, put_oi_usd, max_pain_strike, payout_usd)
    WITH legs AS MATERIALIZED (
        SELECT i.expiry, i.strike, i.option_type, coalesce(s.open_interest, 0) AS oi, s.index_price
          FROM deribit.option_ticker_snapshots s
          JOIN deribit.instruments i ON i.id = s.instrument_id
         WHERE s.ts = p_ts AND i.base_currency = p_currency AND i.kind = 'option' AND i.expiry > p_ts
           AND i.option_type IN ('call', 'put') AND i.strike > 0
    ),
    open_interest AS (
        SELECT l.expiry,
               sum(l.oi) FILTER (WHERE l.option_type = 'call') AS call_oi,
               sum(l.oi) FILTER (WHERE l.option_type = 'put') AS put_oi,
               sum(l.oi * l.index_price) FILTER (WHERE l.option_type = 'call') AS call_oi_usd,
               sum(l.oi * l.index_price) FILTER (WHERE l.option_type = 'put') AS put_oi_usd
          FROM legs l
         GROUP BY l.expiry
    ),
    pain AS (
        SELECT DISTINCT ON (p.expiry) p.expiry, p.strike, p.payout
          FROM (SELECT k.expiry, k.strike,
                       sum(CASE WHEN l.option_type = 'call' THEN l.oi * greatest(k.strike - l.strike, 0)
                                ELSE l.oi * greatest(l.strike - k.strike, 0) END) AS payout,
                       sum(l.oi) AS oi
                  FROM (SELECT DISTINCT expiry, strike FROM legs) k
                  JOIN legs l ON l.expiry = k.expiry
                 GROUP BY k.expiry, k.strike) p
         WHERE p.oi > 0
         ORDER BY p.expiry, p.payout, p.strike
    ),
    atm AS (
        SELECT t.expiry, t.atm_iv FROM deribit.iv_term_structure t WHERE t.currency = p_currency AND t.ts = p_ts
    ),
    skew AS (
        SELECT k.expiry, k.rr25, k.bf25 FROM deribit.iv_skew k WHERE k.currency = p_currency AND k.ts = p_ts
    )
    SELECT p_currency, p_ts, o.expiry, extract(epoch FROM o.expiry - p_ts)::double precision / 86400,
           a.atm_iv, k.rr25, k.bf25, o.call_oi, o.put_oi, o.call_oi_usd, o.put_oi_usd, p.strike, p.payout
      FROM open_interest o
      LEFT JOIN atm a ON a.expiry = o.expiry
      LEFT JOIN skew k ON k.expiry = o.expiry
      LEFT JOIN pain p ON p.expiry = o.expiry;
    GET DIAGNOSTICS expiries = ROW_COUNT;

    PERFORM deribit_ts.interpolate_option_round_tenors(p_currency, p_ts);
    RETURN expiries;
END
$$;

-- Realized variance sums of every futures instrument-day whose candles changed since they were summed (told by
-- the day's rollup: candle count, last close, cost), or of every day with p_full. A day's returns are those
-- ending in it (its first minute's return starts at the previous day's last minute); a return between candles
-- more than one minute apart (a gap) is left out, not stretched over the gap. Returns the days (re)computed.
CREATE OR REPLACE FUNCTION deribit_ts.refresh_realized_variance(p_full boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    WITH signature AS MATERIALIZED (
        SELECT i.id AS instrument_id, d.ts AS day, d.candles, d.close, d.cost
          FROM deribit.instruments i
         CROSS JOIN LATERAL (SELECT r.ts, r.candles, r.close, r.cost FROM deribit.candles_1d r
                              WHERE r.instrument_id = i.id OFFSET 0) d
         WHERE i.kind = 'future'
    ),
    stale AS MATERIALIZED (  -- (filtered before the per-day sums, which are the expensive part)
        SELECT s.*
          FROM signature s
          LEFT JOIN deribit_ts.realized_variance_days v ON v.instrument_id = s.instrument_id AND v.day = s.day
         WHERE p_full OR v.instrument_id IS NULL
            OR (v.candles, v.last_close, v.cost) IS DISTINCT FROM (s.candles, s.close, s.cost)
    ),
    gone AS (  -- days whose candles are gone (deleted, or an instrument removed)
        DELETE FROM deribit_ts.realized_variance_days v
         WHERE NOT EXISTS (SELECT 1 FROM signature s WHERE s.instrument_id = v.instrument_id AND s.day = v.day)
    )
    INSERT INTO deribit_ts.realized_variance_days AS v (instrument_id, day, returns, sum_sq_returns, ranges,
                                                       sum_sq_log_range, candles, last_close, cost)
    SELECT s.instrument_id, s.day, x.returns, x.sum_sq_returns, x.ranges, x.sum_sq_log_range, s.candles, s.close,
           s.cost
      FROM stale s
     CROSS JOIN LATERAL (
        SELECT count(m.r)::integer AS returns, coalesce(sum(m.r * m.r), 0) AS sum_sq_returns,
               count(m.hl)::integer AS ranges, coalesce(sum(m.hl * m.hl), 0) AS sum_sq_log_range
          FROM (SELECT c.ts,
                       CASE WHEN lag(c.ts) OVER w = c.ts - interval '1 minute' AND lag(c.close) OVER w > 0
                                 AND c.close > 0
                            THEN ln(c.close / lag(c.close) OVER w) END AS r,
                       CASE WHEN c.low > 0 AND c.high >= c.low THEN ln(c.high / c.low) END AS hl
                  FROM deribit.candles_1m c
                 WHERE c.instrument_id = s.instrument_id
                   AND c.ts >= s.day - interval '1 minute' AND c.ts < s.day + interval '1 day'
                WINDOW w AS (ORDER BY c.ts)) m
         WHERE m.ts >= s.day
     ) x
    ON CONFLICT (instrument_id, day) DO UPDATE
       SET returns = excluded.returns, sum_sq_returns = excluded.sum_sq_returns, ranges = excluded.ranges,
           sum_sq_log_range = excluded.sum_sq_log_range, candles = excluded.candles,
           last_close = excluded.last_close, cost = excluded.cost;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- Constant-maturity implied volatility per snapshot round: see deribit_ts.summarize_option_round.
CREATE OR REPLACE VIEW deribit.iv_constant_maturity AS
SELECT t.currency, t.ts, t.tenor_days, t.atm_iv, t.rr25, t.bf25
  FROM deribit_ts.option_round_tenors t;

-- Realized volatility per futures instrument and UTC day, annualized in percent like DVOL: 100 * sqrt(525,600 *
-- mean squared one-minute log return) over the day, the trailing 7 and 30 calendar days (days without candles
-- count for nothing, neither zero nor a return); Parkinson's estimator from the day's minute highs and lows:
-- 100 * sqrt(525,600 * mean(ln(high / low)^2) / (4 ln 2)). As of the last `deribit-ts refresh`.
CREATE OR REPLACE VIEW deribit.realized_vol_1d AS
SELECT i.instrument_name,
       (d.day AT TIME ZONE 'UTC')::date AS day,
       100 * sqrt(525600 * d.sum_sq_returns / nullif(d.returns, 0)) AS rv_1d,
       100 * sqrt(525600 * sum(d.sum_sq_returns) OVER w7 / nullif(sum(d.returns) OVER w7, 0)) AS rv_7d,
       100 * sqrt(525600 * sum(d.sum_sq_returns) OVER w30 / nullif(sum(d.returns) OVER w30, 0)) AS rv_30d,
       100 * sqrt(525600 * d.sum_sq_log_range / (4 * ln(2) * nullif(d.ranges, 0))) AS parkinson_1d
  FROM deribit.instruments i
 CROSS JOIN LATERAL (SELECT * FROM deribit_ts.realized_variance_days r WHERE r.instrument_id = i.id ORDER BY r.day) d
WINDOW w7 AS (PARTITION BY i.instrument_name ORDER BY d.day RANGE BETWEEN interval '6 days' PRECEDING AND CURRENT ROW),
       w30 AS (PARTITION BY i.instrument_name ORDER BY d.day
               RANGE BETWEEN interval '29 days' PRECEDING AND CURRENT ROW);

-- DVOL against the realized volatility of the currency's perpetual (the inverse one, e.g. BTC-PERPETUAL, where
-- several exist): dvol = DVOL's last one-minute close of the UTC day, vrp = dvol - rv_30d (the trailing 30 days
-- as of that day), both in percent.
CREATE OR REPLACE VIEW deribit.vol_risk_premium AS
SELECT p.currency, rv.day, dv.close AS dvol, rv.rv_30d, dv.close - rv.rv_30d AS vrp
  FROM (SELECT DISTINCT ON (i.base_currency) i.base_currency AS currency, i.instrument_name
          FROM deribit.instruments i
         WHERE i.is_perpetual AND i.base_currency IS NOT NULL
         ORDER BY i.base_currency, i.settlement_currency IS NOT DISTINCT FROM i.base_currency DESC, i.id) p
  JOIN deribit.realized_vol_1d rv ON rv.instrument_name = p.instrument_name
  LEFT JOIN LATERAL (SELECT v.close FROM deribit.volatility_index v
                      WHERE v.currency = p.currency
                        AND v.ts >= rv.day::timestamp AT TIME ZONE 'UTC'
                        AND v.ts < (rv.day + 1)::timestamp AT TIME ZONE 'UTC'
                      ORDER BY v.ts DESC LIMIT 1) dv ON true;

-- Open interest per snapshot round, live expiry and strike: calls and puts side by side (NULL where the strike
-- lists no option of that type), in contracts and in USD at each option's index price.
CREATE OR REPLACE VIEW deribit.open_interest_by_strike AS
SELECT i.base_currency AS currency, s.ts, i.expiry, i.strike,
       sum(s.open_interest) FILTER (WHERE i.option_type = 'call') AS call_oi,
       sum(s.open_interest) FILTER (WHERE i.option_type = 'put') AS put_oi,
       sum(s.open_interest * s.index_price) FILTER (WHERE i.option_type = 'call') AS call_oi_usd,
       sum(s.open_interest * s.index_price) FILTER (WHERE i.option_type = 'put') AS put_oi_usd
  FROM deribit.option_ticker_snapshots s
  JOIN deribit.instruments i ON i.id = s.instrument_id
 WHERE i.kind = 'option' AND i.expiry > s.ts
 GROUP BY i.base_currency, s.ts, i.expiry, i.strike;

-- Max pain per snapshot round and live expiry: see deribit_ts.summarize_option_round.
CREATE OR REPLACE VIEW deribit.max_pain AS
SELECT e.currency, e.ts, e.expiry, e.max_pain_strike, e.payout_usd
  FROM deribit_ts.option_round_expiries e;

-- Put/call open interest ratio per snapshot round and live expiry (NULL without call open interest).
CREATE OR REPLACE VIEW deribit.put_call_ratio AS
SELECT e.currency, e.ts, e.expiry, e.put_oi / nullif(e.call_oi, 0) AS oi_ratio
  FROM deribit_ts.option_round_expiries e;

-- Every dated future that settled (its index has a delivery price on its expiry date) against its last
-- one-minute close before expiry.
CREATE OR REPLACE VIEW deribit.futures_settlement AS
SELECT f.instrument_name, f.expiry, d.delivery_price, c.close AS last_close,
       c.close - d.delivery_price AS settlement_basis,
       100 * (c.close / d.delivery_price - 1) AS settlement_basis_pct
  FROM deribit.instruments f
  JOIN deribit.delivery_prices d ON d.index_name = f.price_index AND d.date = (f.expiry AT TIME ZONE 'UTC')::date
  LEFT JOIN LATERAL (SELECT c.close FROM deribit.candles_1m c
                      WHERE c.instrument_id = f.id AND c.ts < f.expiry
                      ORDER BY c.ts DESC LIMIT 1) c ON true
 WHERE f.kind = 'future' AND NOT f.is_perpetual AND f.expiry IS NOT NULL AND d.delivery_price > 0;

-- The perpetual's one-minute close against its index at the minutes the index is known: a sample of the index
-- history at that minute, else the perpetual's funding history row on the hour (the exchange's index then).
CREATE OR REPLACE VIEW deribit.perpetual_premium_1m AS
SELECT p.instrument_name, x.ts, c.close AS perpetual_price, x.price AS index_price,
       100 * (c.close / x.price - 1) AS premium_pct
  FROM deribit.instruments p
 CROSS JOIN LATERAL (
    SELECT k.ts, (array_agg(k.price ORDER BY k.source))[1] AS price
      FROM (SELECT h.ts, h.price, 1 AS source FROM deribit.index_price_history h
             WHERE h.index_name = p.price_index AND h.price > 0
            UNION ALL
            SELECT f.ts, f.index_price, 2 FROM deribit.funding_rate_history f
             WHERE f.instrument_id = p.id AND f.index_price > 0) k
     GROUP BY k.ts) x
  JOIN deribit.candles_1m c ON c.instrument_id = p.id AND c.ts = x.ts
 WHERE p.is_perpetual;

-- Funding a long position of the perpetual has paid since the first hour of its funding history, in percent of
-- its notional: 100 * the running sum of interest_1h (negative: received). Hours missing from the history count
-- for nothing; a filter on ts keeps the sum from the start (subtract the value at your start for a period's).
CREATE OR REPLACE VIEW deribit.funding_carry AS
SELECT i.instrument_name, f.ts,
       100 * sum(f.interest_1h) OVER (PARTITION BY i.instrument_name ORDER BY f.ts ROWS UNBOUNDED PRECEDING)
           AS cumulative_funding_pct
  FROM deribit.funding_rate_history f
  JOIN deribit.instruments i ON i.id = f.instrument_id;

-- Raw SVI per snapshot round and expiry with at least 5 strikes in its smile (deribit_ts/svi.py):
-- w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), w = total implied variance (iv/100)^2 * T, k = ln(K/F).
CREATE OR REPLACE VIEW deribit.svi_fit AS
SELECT f.currency, f.ts, f.expiry, f.a, f.b, f.rho, f.m, f.sigma, f.rmse_iv, f.butterfly_arbitrage
  FROM deribit_ts.svi_fits f;
