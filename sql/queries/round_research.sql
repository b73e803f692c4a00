-- The research rows of a snapshot round (deribit_ts/ingest/round_research.py).

-- name: summarize
-- Per expiry ATM IV, skew, open interest and max pain, and the constant-maturity tenors of the %(currency)s round
-- at %(ts)s.
SELECT deribit_ts.summarize_option_round(%(currency)s, %(ts)s);

-- name: smile
-- The smile the SVI fit reads: out-of-the-money mark IVs, k = ln(K/F) against each option's own forward.
SELECT expiry, log_moneyness, mark_iv FROM deribit.iv_smile
 WHERE currency = %(currency)s AND ts = %(ts)s
 ORDER BY expiry, log_moneyness;

-- name: clear_fits
DELETE FROM deribit_ts.svi_fits WHERE currency = %(currency)s AND ts = %(ts)s;

-- name: insert_fit
-- One expiry's SVI fit.
INSERT INTO deribit_ts.svi_fits (currency, ts, expiry, a, b, rho, m, sigma, rmse_iv, butterfly_arbitrage, strikes)
VALUES (%(currency)s, %(ts)s, %(expiry)s, %(a)s, %(b)s, %(rho)s, %(m)s, %(sigma)s, %(rmse_iv)s,
        %(butterfly_arbitrage)s, %(strikes)s);

-- name: done
-- The round is summarized by research %(version)s.
INSERT INTO deribit_ts.option_round_summaries (currency, ts, version)
VALUES (%(currency)s, %(ts)s, %(version)s)
    ON CONFLICT (currency, ts) DO UPDATE SET version = excluded.version, summarized_at = now();

-- name: pending
-- Rounds not yet summarized, or by a version older than %(version)s.
SELECT r.currency, r.ts FROM deribit_ts.snapshot_rounds r
  LEFT JOIN deribit_ts.option_round_summaries s ON s.currency = r.currency AND s.ts = r.ts
 WHERE s.ts IS NULL OR s.version < %(version)s
 ORDER BY r.ts, r.currency;

-- name: realized_variance
-- The realized variance of changed days (every day with %(full)s); returns the days recomputed.
SELECT deribit_ts.refresh_realized_variance(%(full)s);
