-- deribit.max_pain, put_call_ratio and svi_fit read a year of one currency's rows from option_round_expiries and
-- svi_fits (12 live expiries x 105,000 five-minute rounds: 1.26 million rows a year and currency). With several
-- currencies and years in the table, that read was an index scan fetching every row from the heap (0.8-1.6 s on
-- the shared 2-core machine). The primary keys now carry the columns those views return, so the read is an
-- index-only scan of the key's leaf pages in (currency, ts) order (0.35-0.6 s, same machine and load). The
-- price: svi_fits' key about doubles in size (about 50 MB a year and currency).
ALTER TABLE deribit_ts.option_round_expiries
    DROP CONSTRAINT option_round_expiries_pkey,
    ADD CONSTRAINT option_round_expiries_pkey PRIMARY KEY (currency, ts, expiry)
        INCLUDE (call_oi, put_oi, max_pain_strike, payout_usd);

ALTER TABLE deribit_ts.svi_fits
    DROP CONSTRAINT svi_fits_pkey,
    ADD CONSTRAINT svi_fits_pkey PRIMARY KEY (currency, ts, expiry)
        INCLUDE (a, b, rho, m, sigma, rmse_iv, butterfly_arbitrage);
