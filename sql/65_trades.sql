-- Research views over the trade tape (deribit.trades): option trades with their moneyness and delta, the daily
-- smile and flow from trades, liquidations. The daily views read deribit_ts.trade_days, the tape summed per
-- instrument and day, kept current by deribit_ts.refresh_trade_days in the transaction that writes the trades.

-- Recompute the days of `p_instrument` that [p_from, p_until) touches from the stored trades.
CREATE OR REPLACE FUNCTION deribit_ts.refresh_trade_days(p_instrument text, p_from timestamptz, p_until timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('day', p_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('day', (p_until - interval '1 microsecond') AT TIME ZONE 'UTC') + interval '1 day')
                      AT TIME ZONE 'UTC';
    written integer;
BEGIN
    DELETE FROM deribit_ts.trade_days
     WHERE instrument_name = p_instrument AND day >= (lo AT TIME ZONE 'UTC')::date AND day < (hi AT TIME ZONE 'UTC')::date;
    INSERT INTO deribit_ts.trade_days
    SELECT t.instrument_name, (t.ts AT TIME ZONE 'UTC')::date,
           count(*), sum(t.amount),
           sum(t.amount) FILTER (WHERE t.iv IS NOT NULL), sum(t.iv * t.amount) FILTER (WHERE t.iv IS NOT NULL),
           min(t.iv), max(t.iv),
           sum(t.amount) FILTER (WHERE t.index_price > 0 AND i.strike > 0),
           sum(ln(i.strike / t.index_price) * t.amount) FILTER (WHERE t.index_price > 0 AND i.strike > 0),
           coalesce(sum(t.amount) FILTER (WHERE t.block_trade_id IS NOT NULL), 0)
      FROM deribit.trades t
      LEFT JOIN deribit.instruments i ON i.instrument_name = t.instrument_name
     WHERE t.instrument_name = p_instrument AND t.ts >= lo AND t.ts < hi
     GROUP BY 1, 2;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

-- Recompute deribit_ts.trade_seq_gaps where trades of `p_instrument` in [p_from, p_until) were written: the pairs of
-- consecutive stored trades from the last one before the range to the first one after it (trade_seq follows time,
-- so those two are found by time on the trades' key, and everything between them lies in the range). Reads the
-- range's trades once; called by every writer of trades in the transaction that writes them.
CREATE OR REPLACE FUNCTION deribit_ts.refresh_trade_seq_gaps(
    p_instrument text, p_from timestamptz, p_until timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    before_seq bigint;
    before_ts timestamptz;
    after_seq bigint;
    after_ts timestamptz;
    written integer;
BEGIN
    SELECT t.trade_seq, t.ts INTO before_seq, before_ts
      FROM deribit.trades t
     WHERE t.instrument_name = p_instrument AND t.ts < p_from
     ORDER BY t.ts DESC, t.trade_seq DESC LIMIT 1;
    SELECT t.trade_seq, t.ts INTO after_seq, after_ts
      FROM deribit.trades t
     WHERE t.instrument_name = p_instrument AND t.ts >= p_until
     ORDER BY t.ts, t.trade_seq LIMIT 1;
    DELETE FROM deribit_ts.trade_seq_gaps g
     WHERE g.instrument_name = p_instrument
       AND g.trade_seq > coalesce(before_seq, -1)
       AND (after_seq IS NULL OR g.trade_seq <= after_seq);
    INSERT INTO deribit_ts.trade_seq_gaps (instrument_name, trade_seq, ts, prev_seq, prev_ts)
    SELECT p_instrument, s.trade_seq, s.ts, s.prev_seq, s.prev_ts
      FROM (SELECT r.trade_seq, r.ts, lag(r.trade_seq) OVER w AS prev_seq, lag(r.ts) OVER w AS prev_ts
              FROM (SELECT before_seq AS trade_seq, before_ts AS ts WHERE before_seq IS NOT NULL
                    UNION ALL
                    SELECT t.trade_seq, t.ts FROM deribit.trades t
                     WHERE t.instrument_name = p_instrument AND t.ts >= p_from AND t.ts < p_until
                    UNION ALL
                    SELECT after_seq, after_ts WHERE after_seq IS NOT NULL) r
            WINDOW w AS (ORDER BY r.trade_seq)) s
     WHERE s.trade_seq > s.prev_seq + 1
    ON CONFLICT (instrument_name, trade_seq) DO UPDATE
       SET ts = excluded.ts, prev_seq = excluded.prev_seq, prev_ts = excluded.prev_ts;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

-- deribit.black76_greeks' delta alone, as one expression: the same operations in the same order (so the same
-- double) and the same domain (NULL where black76_greeks returns no row). A SQL function of one expression is
-- inlined into the query that calls it, while black76_greeks' nested sub-selects run as a plan of their own for
-- each row: most of deribit.option_trades' time went there. d1 is written out where it is used (an inlined
-- function cannot name it): the arithmetic repeats, each result is the same.
CREATE OR REPLACE FUNCTION deribit_ts.black76_delta(
    option_type text, forward double precision, strike double precision, years double precision,
    iv_pct double precision)
RETURNS double precision
IMMUTABLE PARALLEL SAFE
LANGUAGE sql AS $$
SELECT CASE
    WHEN NOT coalesce(forward >= 1e-100 AND forward <= 1e100 AND strike >= 1e-100 AND strike <= 1e100
                      AND lower(option_type) IN ('call', 'c', 'put', 'p')
                      AND (years IS NULL OR years <= 1000) AND (iv_pct IS NULL OR iv_pct <= 1e6), false)
        THEN NULL
    -- live: sigma sqrt(T), formed in logs, above 1e-12
    WHEN CASE WHEN years > 0 AND iv_pct > 0 AND years <= 1000 AND iv_pct <= 1e6
              THEN ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years) > ln(1e-12::double precision)
              ELSE false END
        THEN CASE WHEN (ln(forward) - ln(strike)) / exp(ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years))
                       + 0.5 * exp(ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years)) > 20 THEN 1
                  WHEN (ln(forward) - ln(strike)) / exp(ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years))
                       + 0.5 * exp(ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years)) < -20 THEN 0
                  ELSE 0.5 * erfc(-((ln(forward) - ln(strike))
                                    / exp(ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years))
                                    + 0.5 * exp(ln(iv_pct) - ln(100::double precision) + 0.5 * ln(years)))
                                  / sqrt(2.0)) END
             - CASE WHEN lower(option_type) IN ('call', 'c') THEN 0 ELSE 1 END
    WHEN lower(option_type) IN ('call', 'c') THEN (forward > strike)::int::double precision
    ELSE -((forward < strike)::int)::double precision
END
$$;

-- One row per option trade, with what its instrument says (currency, expiry, strike, type) and what follows from
-- the trade: time to expiry, log-moneyness against the index at the trade, Black-76 delta at the trade's IV (as
-- deribit.black76_greeks computes it, through deribit_ts.black76_delta: a lateral join of black76_greeks per trade
-- took 2.5 times as long over a day of BTC options, docs/performance.md).
CREATE OR REPLACE VIEW deribit.option_trades AS
SELECT t.instrument_name,
       t.ts,
       t.trade_id,
       t.trade_seq,
       t.price,
       t.amount,
       t.direction,
       t.iv,
       t.mark_price,
       t.index_price,
       t.block_trade_id,
       t.liquidation,
       i.base_currency                                                        AS currency,
       i.expiry,
       i.strike,
       i.option_type,
       e.to_expiry_s / 86400                                                  AS days_to_expiry,
       CASE WHEN t.index_price > 0 AND i.strike > 0 THEN ln(i.strike / t.index_price) END AS log_moneyness,
       CASE WHEN t.iv > 0 AND t.index_price > 0 AND i.strike > 0 AND i.expiry > t.ts
            THEN deribit_ts.black76_delta(i.option_type, t.index_price, i.strike, e.to_expiry_s / (365 * 86400), t.iv)
       END                                                                    AS delta,
       t.amount * t.index_price                                               AS usd_notional
  FROM deribit.trades t
  JOIN deribit.instruments i ON i.instrument_name = t.instrument_name AND i.kind = 'option'
  -- once per trade (OFFSET 0 keeps it from being substituted into each use): extract(epoch ...) is numeric
  -- arithmetic, the inlined delta names the time to expiry five times
  CROSS JOIN LATERAL (SELECT extract(epoch FROM i.expiry - t.ts)::double precision AS to_expiry_s OFFSET 0) e;

-- The daily smile from trades: one row per option and UTC day it traded, as far back as the tape goes.
CREATE OR REPLACE VIEW deribit.trade_smile_1d AS
SELECT i.base_currency                                   AS currency,
       d.day,
       i.expiry,
       i.strike,
       i.option_type,
       d.trades,
       d.volume,
       d.iv_amount / nullif(d.iv_volume, 0)              AS vwap_iv,
       d.min_iv,
       d.max_iv,
       d.lm_amount / nullif(d.lm_volume, 0)              AS log_moneyness
  FROM deribit_ts.trade_days d
  JOIN deribit.instruments i ON i.instrument_name = d.instrument_name AND i.kind = 'option';

-- Option flow per currency, UTC day and expiry: call and put volume, their ratio, block volume, trades.
CREATE OR REPLACE VIEW deribit.option_flow_1d AS
SELECT i.base_currency                                                         AS currency,
       d.day,
       i.expiry,
       coalesce(sum(d.volume) FILTER (WHERE i.option_type = 'call'), 0)        AS call_volume,
       coalesce(sum(d.volume) FILTER (WHERE i.option_type = 'put'), 0)         AS put_volume,
       sum(d.volume) FILTER (WHERE i.option_type = 'put')
           / nullif(sum(d.volume) FILTER (WHERE i.option_type = 'call'), 0)    AS put_call_ratio,
       sum(d.block_volume)                                                     AS block_volume,
       sum(d.trades)::bigint                                                   AS trades
  FROM deribit_ts.trade_days d
  JOIN deribit.instruments i ON i.instrument_name = d.instrument_name AND i.kind = 'option'
 GROUP BY i.base_currency, d.day, i.expiry;

-- Liquidation trades of futures and perpetuals (the partial index trades_liquidation_idx finds them).
CREATE OR REPLACE VIEW deribit.liquidations AS
SELECT t.instrument_name,
       t.ts,
       t.trade_id,
       t.trade_seq,
       t.price,
       t.amount,
       t.direction,
       t.liquidation,
       t.mark_price,
       t.index_price,
       i.base_currency                                                            AS currency,
       i.is_perpetual,
       CASE WHEN i.instrument_type = 'linear' THEN t.amount * t.price ELSE t.amount END AS usd_notional
  FROM deribit.trades t
  JOIN deribit.instruments i ON i.instrument_name = t.instrument_name AND i.kind = 'future'
 WHERE t.liquidation IS NOT NULL;
