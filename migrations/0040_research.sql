-- What the research views keep materialized, so each answers a year of one currency within a second.
--
-- Option snapshot rounds: a year of 5-minute rounds is ~105,000 rounds of ~800 options each; the smile, ATM IV and
-- skew of a round are computed once, when the round is written (and by `deribit-ts refresh` for rounds written
-- before, or by an older version of the computation), never again on read. Realized volatility: the squared
-- one-minute returns of a day are summed once per day (refreshed when the day's candles change).

-- One row per snapshot round, currency and expiry live in it: the expiry's forward, ATM IV and 25-delta skew (as
-- deribit.iv_term_structure and deribit.iv_skew compute them at that round), its open interest and max pain.
CREATE TABLE deribit_ts.option_round_expiries (
    currency        text NOT NULL,
    ts              timestamptz NOT NULL,   -- the round's exchange time
    expiry          timestamptz NOT NULL,
    days_to_expiry  double precision NOT NULL,
    atm_iv          double precision,       -- percent; NULL where the forward is outside the strikes
    rr25            double precision,       -- percent; NULL where the wings cannot be interpolated
    bf25            double precision,
    call_oi         double precision,       -- open interest in contracts (base currency)
    put_oi          double precision,
    call_oi_usd     double precision,       -- open interest x the option's index price
    put_oi_usd      double precision,
    max_pain_strike double precision,       -- USD; NULL without open interest
    payout_usd      double precision,       -- options' intrinsic value at max_pain_strike x open interest
    PRIMARY KEY (currency, ts, expiry)
);
COMMENT ON TABLE deribit_ts.option_round_expiries IS
    'Per snapshot round, currency and live expiry: ATM IV, 25-delta skew, open interest and max pain (materialized for deribit.iv_constant_maturity, max_pain, put_call_ratio)';

-- One row per round, currency and tenor (7, 14, 30, 60, 90, 180 days), interpolated from option_round_expiries.
CREATE TABLE deribit_ts.option_round_tenors (
    currency    text NOT NULL,
    tenor_days  integer NOT NULL,
    ts          timestamptz NOT NULL,
    atm_iv      double precision,
    rr25        double precision,
    bf25        double precision,
    PRIMARY KEY (currency, tenor_days, ts)
);
COMMENT ON TABLE deribit_ts.option_round_tenors IS
    'Constant-maturity ATM IV, rr25 and bf25 per snapshot round and tenor (materialized for deribit.iv_constant_maturity)';

-- Raw SVI per round and expiry (fitted in Python at round time: deribit_ts/svi.py).
CREATE TABLE deribit_ts.svi_fits (
    currency            text NOT NULL,
    ts                  timestamptz NOT NULL,
    expiry              timestamptz NOT NULL,
    a                   double precision NOT NULL,
    b                   double precision NOT NULL,
    rho                 double precision NOT NULL,
    m                   double precision NOT NULL,
    sigma               double precision NOT NULL,
    rmse_iv             double precision NOT NULL,
    butterfly_arbitrage boolean NOT NULL,
    strikes             integer NOT NULL,
    PRIMARY KEY (currency, ts, expiry)
);
COMMENT ON TABLE deribit_ts.svi_fits IS 'Raw SVI fitted to the mark IVs of each snapshot round and expiry with at least 5 strikes';

-- Which rounds are summarized, by which version of the computation (an upgrade that changes it redoes the rounds
-- of older versions at the next refresh).
CREATE TABLE deribit_ts.option_round_summaries (
    currency      text NOT NULL,
    ts            timestamptz NOT NULL,
    version       integer NOT NULL,
    summarized_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (currency, ts)
);
CREATE INDEX option_round_summaries_version_idx ON deribit_ts.option_round_summaries (version);
COMMENT ON TABLE deribit_ts.option_round_summaries IS
    'Snapshot rounds whose research rows (option_round_expiries, option_round_tenors, svi_fits) are written, and by which version';

-- Per futures instrument and UTC day: the sums realized volatility is made of, and the day's candle signature
-- (count, last close, cost) that tells a refresh whether the day's candles changed since.
CREATE TABLE deribit_ts.realized_variance_days (
    instrument_id   integer NOT NULL,
    day             timestamptz NOT NULL,   -- 00:00 UTC
    returns         integer NOT NULL,       -- one-minute log returns (consecutive candles one minute apart)
    sum_sq_returns  double precision NOT NULL,
    ranges          integer NOT NULL,       -- candles with high and low > 0
    sum_sq_log_range double precision NOT NULL,  -- sum of ln(high / low)^2
    candles         bigint NOT NULL,
    last_close      double precision NOT NULL,
    cost            double precision NOT NULL,
    PRIMARY KEY (instrument_id, day)
);
COMMENT ON TABLE deribit_ts.realized_variance_days IS
    'Per futures instrument and UTC day: sums of squared one-minute log returns and of squared log ranges (materialized for deribit.realized_vol_1d)';
