-- Options research in SQL: Deribit's greeks (black76_greeks), the latest chain, the smile, the ATM term
-- structure and the 25-delta skew. Conventions (docs/deribit.md, checked against exchange
-- records): Black-76 on the forward F = underlying_price, r = 0, T in years of 365 days, IVs in percent.
-- Every view reads snapshot rounds (deribit-ts snapshot options): all rows of a round share one `ts`.

-- Deribit's greeks of one option: price in USD (divide by the forward for the coin price of an inverse option),
-- delta not premium-adjusted, gamma per 1 USD of the forward (unrounded; the exchange prints 5 decimals), vega in
-- USD per vol point, theta in USD per day capped at the time value left (the exchange's "min(1-day theta,
-- lifetime theta)"), spot-style rho (K T N(d2) / 100, not Black-76's -T * price). PostgreSQL 16+ has erf/erfc
-- built in: N(x) = erfc(-x / sqrt 2) / 2 is exact to double precision in both tails.
--
-- Finite for every input, never an error: a snapshot round is one transaction, so one option's arithmetic error
-- (an underflow of exp() in the last hours before expiry) would lose the whole round. PostgreSQL raises on any
-- float result that underflows to 0 or overflows, so every operation below stays inside bounds:
--   * sigma sqrt(T) is formed in logs, and below 1e-12 (at or after expiry, no vol, or the last instants) the
--     option is at its limit: the intrinsic value, delta 1 / 0 (call) or -1 / 0 (put) by the side of the strike
--     the forward is on (0 at the money), gamma, vega, theta and rho 0;
--   * ln(F / K) = ln F - ln K (no overflow of the ratio);
--   * beyond 20 standard deviations N(d) is 0 or 1 and the density 0 (errors below 3e-89 of the price);
--   * the domain: forward and strike in [1e-100, 1e100] USD, years up to 1000 and iv up to 1e6 percent. Outside
--     it, and for a NaN input, a non-positive forward or strike or an option_type other than call/put (c/p
--     accepted): no row (NULL greeks in a LEFT JOIN).
CREATE OR REPLACE FUNCTION deribit.black76_greeks(
    option_type text, forward double precision, strike double precision, years double precision,
    iv_pct double precision)
RETURNS TABLE (price double precision, delta double precision, gamma double precision, vega double precision,
               theta double precision, rho double precision)
IMMUTABLE PARALLEL SAFE
LANGUAGE sql AS $$
SELECT CASE WHEN g.live THEN g.value ELSE g.intrinsic END,
       CASE WHEN g.live THEN g.delta_live
            WHEN g.is_call THEN (g.f > g.k)::int::double precision
            ELSE -((g.f < g.k)::int)::double precision END,
       CASE WHEN g.live THEN g.pdf1 / (g.f * g.sd) ELSE 0 END,
       CASE WHEN g.live THEN g.f * g.pdf1 * g.sqrt_t / 100 ELSE 0 END,
       CASE WHEN g.live THEN greatest(-g.f * g.pdf1 * g.s / (2 * g.sqrt_t) / 365, g.intrinsic - g.value)
            ELSE 0 END,
       CASE WHEN g.live AND g.is_call THEN g.k * g.t * g.nd2 / 100
            WHEN g.live THEN -g.k * g.t * g.n_minus_d2 / 100 ELSE 0 END
  FROM (
    SELECT n.*,
           CASE WHEN n.is_call THEN n.f * n.nd1 - n.k * n.nd2 ELSE n.k * n.n_minus_d2 - n.f * n.n_minus_d1 END
               AS value,
           CASE WHEN n.is_call THEN n.nd1 ELSE n.nd1 - 1 END AS delta_live
      FROM (
        SELECT d.*,
               CASE WHEN d.d1 > 20 THEN 1 WHEN d.d1 < -20 THEN 0 ELSE 0.5 * erfc(-d.d1 / sqrt(2.0)) END AS nd1,
               CASE WHEN d.d2 > 20 THEN 1 WHEN d.d2 < -20 THEN 0 ELSE 0.5 * erfc(-d.d2 / sqrt(2.0)) END AS nd2,
               CASE WHEN d.d1 > 20 THEN 0 WHEN d.d1 < -20 THEN 1 ELSE 0.5 * erfc(d.d1 / sqrt(2.0)) END AS n_minus_d1,
               CASE WHEN d.d2 > 20 THEN 0 WHEN d.d2 < -20 THEN 1 ELSE 0.5 * erfc(d.d2 / sqrt(2.0)) END AS n_minus_d2,
               CASE WHEN abs(d.d1) <= 20 THEN exp(-0.5 * d.d1 * d.d1) / sqrt(2 * pi()) ELSE 0 END AS pdf1
          FROM (
            SELECT x.*, x.d1 - x.sd AS d2
              FROM (
                SELECT l.*, CASE WHEN l.live THEN (ln(l.f) - ln(l.k)) / l.sd + 0.5 * l.sd END AS d1
                  FROM (
                    SELECT v.*,
                           CASE WHEN v.live THEN exp(v.ln_sd) END AS sd,
                           CASE WHEN v.live THEN sqrt(v.t) END AS sqrt_t,
                           CASE WHEN v.live THEN v.iv / 100 END AS s
                      FROM (
                        SELECT i.*, coalesce(i.ln_sd > ln(1e-12::double precision), false) AS live
                          FROM (
                            -- (the domain test is repeated in each expression: the planner may compute them
                            -- before the WHERE, e.g. when folding constant arguments)
                            SELECT o.is_call, o.f, o.k, o.t, o.iv,
                                   CASE WHEN o.in_domain AND o.t > 0 AND o.iv > 0 AND o.t <= 1000 AND o.iv <= 1e6
                                        THEN ln(o.iv) - ln(100::double precision) + 0.5 * ln(o.t) END AS ln_sd,
                                   CASE WHEN NOT o.in_domain THEN NULL
                                        WHEN o.is_call THEN greatest(o.f - o.k, 0)
                                        ELSE greatest(o.k - o.f, 0) END AS intrinsic
                              FROM (
                                SELECT lower(option_type) IN ('call', 'c') AS is_call, forward AS f, strike AS k,
                                       years AS t, iv_pct AS iv,
                                       coalesce(forward >= 1e-100 AND forward <= 1e100 AND strike >= 1e-100
                                                AND strike <= 1e100, false) AS in_domain
                                 WHERE forward >= 1e-100 AND forward <= 1e100 AND strike >= 1e-100
                                   AND strike <= 1e100 AND lower(option_type) IN ('call', 'c', 'put', 'p')
                                   AND (years IS NULL OR years <= 1000) AND (iv_pct IS NULL OR iv_pct <= 1e6)
                                OFFSET 0
                              ) o
                          ) i
                        OFFSET 0
                      ) v
                  ) l
                OFFSET 0
              ) x
            OFFSET 0
          ) d
      ) n
  ) g
$$;

-- The snapshot rounds: which instants have a whole chain. The cheap way to find the newest round
-- (`SELECT currency, max(ts) FROM deribit.option_snapshot_rounds GROUP BY currency`) before reading a view at it.
CREATE OR REPLACE VIEW deribit.option_snapshot_rounds AS
SELECT r.currency, r.ts, r.options, r.bulk_only, r.seconds, r.run_id
  FROM deribit_ts.snapshot_rounds r;

-- The latest round of each currency: every option it holds (those live at that instant), with its contract terms.
CREATE OR REPLACE VIEW deribit.option_chain_latest AS
SELECT r.currency, i.instrument_name, s.ts, i.expiry, i.strike, i.option_type,
       extract(epoch FROM i.expiry - s.ts) / 86400 AS days_to_expiry,
       s.underlying_price, s.underlying_index, s.index_price,
       i.strike / s.underlying_price AS moneyness,
       ln(i.strike / s.underlying_price) AS log_moneyness,
       s.mark_price, s.mark_iv, s.bid_iv, s.ask_iv, s.best_bid_price, s.best_ask_price,
       s.delta, s.gamma, s.vega, s.theta, s.rho, s.open_interest, s.greeks_source, s.quote_ts
  -- the currencies that have rounds, by a skip scan of the rounds' primary key (a few index probes, however many
  -- rounds or expired options there are)
  FROM (WITH RECURSIVE found (currency) AS (
            SELECT min(currency) FROM deribit_ts.snapshot_rounds
            UNION ALL
            SELECT (SELECT min(n.currency) FROM deribit_ts.snapshot_rounds n WHERE n.currency > found.currency)
              FROM found WHERE found.currency IS NOT NULL)
        SELECT currency FROM found WHERE currency IS NOT NULL) c
 CROSS JOIN LATERAL (SELECT sr.currency, sr.ts FROM deribit_ts.snapshot_rounds sr
                      WHERE sr.currency = c.currency ORDER BY sr.ts DESC LIMIT 1) r
  JOIN deribit.option_ticker_snapshots s ON s.ts = r.ts
  -- each row's instrument by primary key (OFFSET 0 keeps the planner from hashing the whole catalogue, which
  -- grows with every expired option, once per round): the work stays the size of the round
 CROSS JOIN LATERAL (SELECT * FROM deribit.instruments i WHERE i.id = s.instrument_id OFFSET 0) i
 WHERE i.base_currency = r.currency AND i.expiry > s.ts;

-- Out-of-the-money options of every round: calls at or above the forward, puts below it.
CREATE OR REPLACE VIEW deribit.iv_smile AS
SELECT i.base_currency AS currency, s.ts, i.expiry, i.strike, i.option_type,
       ln(i.strike / s.underlying_price) AS log_moneyness, s.mark_iv, s.delta
  FROM deribit.option_ticker_snapshots s
  JOIN deribit.instruments i ON i.id = s.instrument_id
 WHERE i.expiry > s.ts
   AND s.underlying_price > 0 AND s.mark_iv > 0
   AND ((i.option_type = 'call' AND i.strike >= s.underlying_price)
        OR (i.option_type = 'put' AND i.strike < s.underlying_price));

-- ATM IV per round and expiry: the smile's mark IV interpolated linearly in log-moneyness between the two strikes
-- around the expiry's forward (the round's mean underlying_price of that expiry). None when the forward is
-- outside the listed strikes (no extrapolation).
CREATE OR REPLACE VIEW deribit.iv_term_structure AS
SELECT r.currency, r.ts, e.expiry, extract(epoch FROM e.expiry - r.ts) / 86400 AS days_to_expiry,
       e.iv_below + (e.iv_above - e.iv_below)
                    * CASE WHEN e.k_above = e.k_below THEN 0 ELSE ln(e.forward / e.k_below) / ln(e.k_above / e.k_below) END
           AS atm_iv
  FROM deribit_ts.snapshot_rounds r
 CROSS JOIN LATERAL (
    SELECT b.expiry, b.forward,
           (array_agg(b.strike ORDER BY b.strike DESC) FILTER (WHERE b.strike <= b.forward))[1] AS k_below,
           (array_agg(b.iv ORDER BY b.strike DESC) FILTER (WHERE b.strike <= b.forward))[1] AS iv_below,
           (array_agg(b.strike ORDER BY b.strike) FILTER (WHERE b.strike >= b.forward))[1] AS k_above,
           (array_agg(b.iv ORDER BY b.strike) FILTER (WHERE b.strike >= b.forward))[1] AS iv_above
      FROM (
        SELECT i.expiry, i.strike, avg(s.mark_iv) AS iv,
               sum(sum(s.underlying_price)) OVER w / sum(count(*)) OVER w AS forward
          FROM deribit.option_ticker_snapshots s
         CROSS JOIN LATERAL (SELECT * FROM deribit.instruments i WHERE i.id = s.instrument_id OFFSET 0) i
         WHERE s.ts = r.ts AND i.base_currency = r.currency AND i.expiry > s.ts
           AND s.mark_iv > 0 AND s.underlying_price > 0
         GROUP BY i.expiry, i.strike
        WINDOW w AS (PARTITION BY i.expiry)
      ) b
     GROUP BY b.expiry, b.forward
 ) e
 WHERE e.k_below IS NOT NULL AND e.k_above IS NOT NULL;

-- 25-delta risk reversal and butterfly per round and expiry: the call IV at delta 0.25 and the put IV at delta
-- -0.25, each interpolated linearly in delta between the two quoted options that bracket it (one at or beyond 25
-- delta, one inside); rr25 = call - put, bf25 = (call + put) / 2 - ATM (iv_term_structure). Every expiry whose two
-- wings each have such a pair has a row, however far apart the pair's strikes: the smile is smooth in delta
-- between listed strikes, so the interpolation is as good there as anywhere. None where a wing has no option on one
-- side of 25 delta (no extrapolation).
-- Two delta conventions: rr25 / bf25 use Deribit's delta as quoted (Black-76 N(d1), not premium-adjusted);
-- rr25_pa / bf25_pa the premium-adjusted delta, the convention for coin-margined options, whose premium is paid in
-- the coin: delta - mark_price (the option's price in coin), i.e. K/F N(d2) for a call, -K/F N(-d2) for a put.
CREATE OR REPLACE VIEW deribit.iv_skew AS
SELECT t.currency, t.ts, t.expiry,
       w.call25 - w.put25 AS rr25, (w.call25 + w.put25) / 2 - t.atm_iv AS bf25,
       w.call25_pa - w.put25_pa AS rr25_pa, (w.call25_pa + w.put25_pa) / 2 - t.atm_iv AS bf25_pa
  FROM deribit.iv_term_structure t
 CROSS JOIN LATERAL (
    SELECT max(p.iv) FILTER (WHERE p.option_type = 'call' AND NOT p.adjusted) AS call25,
           max(p.iv) FILTER (WHERE p.option_type = 'put' AND NOT p.adjusted) AS put25,
           max(p.iv) FILTER (WHERE p.option_type = 'call' AND p.adjusted) AS call25_pa,
           max(p.iv) FILTER (WHERE p.option_type = 'put' AND p.adjusted) AS put25_pa
      FROM (
        SELECT a.option_type, a.adjusted,
               a.iv_in + (a.iv_out - a.iv_in) * (a.target - a.d_in) / nullif(a.d_out - a.d_in, 0) AS iv
          FROM (
            SELECT q.option_type, q.adjusted, q.target,
                   (array_agg(q.delta ORDER BY abs(q.delta) ASC) FILTER (WHERE abs(q.delta) >= 0.25))[1] AS d_in,
                   (array_agg(q.iv ORDER BY abs(q.delta) ASC) FILTER (WHERE abs(q.delta) >= 0.25))[1] AS iv_in,
                   (array_agg(q.delta ORDER BY abs(q.delta) DESC) FILTER (WHERE abs(q.delta) < 0.25))[1] AS d_out,
                   (array_agg(q.iv ORDER BY abs(q.delta) DESC) FILTER (WHERE abs(q.delta) < 0.25))[1] AS iv_out
              FROM (
                SELECT i.option_type, d.adjusted, d.delta, s.mark_iv AS iv,
                       CASE WHEN i.option_type = 'call' THEN 0.25 ELSE -0.25 END AS target
                  FROM deribit.instruments i  -- the options of this expiry, then their row of the round
                 CROSS JOIN LATERAL (SELECT * FROM deribit.option_ticker_snapshots s
                                      WHERE s.instrument_id = i.id AND s.ts = t.ts OFFSET 0) s
                 CROSS JOIN LATERAL (VALUES (false, s.delta), (true, s.delta - s.mark_price)) AS d (adjusted, delta)
                 WHERE i.base_currency = t.currency AND i.kind = 'option' AND i.expiry = t.expiry
                   AND s.mark_iv > 0 AND d.delta IS NOT NULL
              ) q
             GROUP BY q.option_type, q.adjusted, q.target
          ) a
         WHERE a.d_in IS NOT NULL AND a.d_out IS NOT NULL
      ) p
 ) w
 WHERE w.call25 IS NOT NULL AND w.put25 IS NOT NULL;
