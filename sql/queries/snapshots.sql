-- Queries of an option snapshot round (deribit_ts/ingest/snapshots.py).

-- name: staging
-- The round's rows as the exchange sent them, before the greeks are completed in SQL ({columns}: name and type
-- of each); the table lives for the session and empties itself at every commit.
CREATE TEMP TABLE IF NOT EXISTS snapshot_round ({columns}) ON COMMIT DELETE ROWS;

-- name: write
-- The staged rows as the round at %(ts)s. Rows whose greeks the exchange did not send (bulk-only, or a ticker that
-- failed) get them from the same formula the exchange uses; T runs from the quote's own timestamp to expiry in
-- 365-day years.
INSERT INTO deribit.option_ticker_snapshots (
    instrument_id, ts, quote_ts, underlying_price, underlying_index, index_price, mark_price, mark_iv, bid_iv, ask_iv,
    best_bid_price, best_ask_price, delta, gamma, vega, theta, rho, interest_rate, open_interest, greeks_source)
SELECT r.instrument_id, %(ts)s, r.quote_ts, r.underlying_price, r.underlying_index, r.index_price, r.mark_price,
       r.mark_iv, r.bid_iv, r.ask_iv, r.best_bid_price, r.best_ask_price,
       coalesce(r.delta, g.delta), coalesce(r.gamma, g.gamma), coalesce(r.vega, g.vega),
       coalesce(r.theta, g.theta), coalesce(r.rho, g.rho), r.interest_rate, r.open_interest,
       CASE WHEN r.delta IS NULL THEN 'sql' ELSE r.greeks_source END
  FROM pg_temp.snapshot_round r
  JOIN deribit.instruments i ON i.id = r.instrument_id
  LEFT JOIN LATERAL deribit.black76_greeks(
        i.option_type, r.underlying_price, i.strike,
        extract(epoch FROM i.expiry - r.quote_ts) / (365 * 86400), r.mark_iv) g ON r.delta IS NULL
ON CONFLICT (instrument_id, ts) DO NOTHING;

-- name: round
-- The round of %(currency)s at %(ts)s: its options, whether bulk only, its run and how long it took.
INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only, run_id, seconds)
VALUES (%(currency)s, %(ts)s, %(options)s, %(bulk_only)s, %(run_id)s, %(seconds)s)
    ON CONFLICT (currency, ts) DO NOTHING;
