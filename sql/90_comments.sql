-- What every relation a researcher reads in schema deribit holds: a COMMENT on each table and view saying what a
-- row is, and one on each column giving its unit and convention (`\d+ deribit.basis_1m` in psql shows them;
-- docs/schema.md is generated from them). Applied after every other repeatable file, so it covers the views they
-- create; a test fails when a relation or a column of schema deribit has none.
--
-- Conventions used throughout:
--   * times are timestamptz (an instant; psql shows it in the session's time zone, deribit-ts prints UTC); a
--     candle or bucket is keyed by the instant it opens; expiries and deliveries are at 08:00 UTC;
--   * prices are in the instrument's quote currency: USD for inverse (coin-settled) futures and perpetuals, the
--     coin (BTC, ETH) for inverse options, USDC for linear (USDC-settled) instruments; strikes, forwards, index
--     and delivery prices are in USD (USDC for linear ones);
--   * volume is in the base currency (BTC for BTC-PERPETUAL and BTC options), cost (traded value) in the quote;
--   * implied volatilities are in percent (61.27 = 61.27 % a year), as Deribit quotes them; other `_pct` columns
--     are percent too (1.5 = 1.5 %); fractions say so;
--   * annualized figures are simple (not compounded) on a 365-day year.
-- One section per relation, in the order the migrations and repeatable files create them.

COMMENT ON SCHEMA deribit IS
    'Deribit market data collected by deribit-ts: query the views (ohlcv_1m, funding_rates, index_prices, option_snapshots, ...). Conventions: times are timestamptz instants (deribit-ts prints UTC), a candle or bucket keyed by the instant it opens, expiries and deliveries at 08:00 UTC; prices in the instrument''s quote currency (USD for inverse futures and perpetuals, the coin for inverse options, USDC for linear instruments), strikes, forwards, index and delivery prices in USD; volume in the base currency, cost in the quote currency; implied volatilities and every _pct column in percent (61.27 = 61.27 %), fractions named as such; annualized figures simple on a 365-day year.';

-- ---------------------------------------------------------------------------------------------------------------
-- Tables (migrations)
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON TABLE deribit.instruments IS
    'Every Deribit instrument deribit-ts has seen (active and expired): one row per instrument_name, as the exchange''s catalogue (public/get_instruments) last described it';
COMMENT ON COLUMN deribit.instruments.id IS 'deribit-ts'' own key of the instrument (what the market-data tables store as instrument_id); not Deribit''s id';
COMMENT ON COLUMN deribit.instruments.instrument_name IS 'Deribit''s name, e.g. BTC-PERPETUAL, BTC-27SEP24, BTC-27SEP24-40000-C';
COMMENT ON COLUMN deribit.instruments.kind IS 'future (perpetuals included), option, spot, future_combo or option_combo, as sent';
COMMENT ON COLUMN deribit.instruments.is_perpetual IS 'true for perpetual futures (no expiry, hourly funding)';
COMMENT ON COLUMN deribit.instruments.base_currency IS 'The currency the instrument is about (BTC, ETH, ...): the unit of volume';
COMMENT ON COLUMN deribit.instruments.quote_currency IS 'The currency prices are quoted in: USD for inverse futures, the coin for inverse options, USDC for linear instruments';
COMMENT ON COLUMN deribit.instruments.counter_currency IS 'Deribit''s counter currency (USD for inverse options and futures), as sent';
COMMENT ON COLUMN deribit.instruments.settlement_currency IS 'The currency profits and losses settle in: the coin for inverse instruments, USDC for linear ones';
COMMENT ON COLUMN deribit.instruments.settlement_period IS 'perpetual, day, week, month, ... as sent';
COMMENT ON COLUMN deribit.instruments.instrument_type IS 'reversed (inverse: coin-margined, priced in USD) or linear, as sent';
COMMENT ON COLUMN deribit.instruments.price_index IS 'The index the instrument settles against, e.g. btc_usd (see deribit.index_prices)';
COMMENT ON COLUMN deribit.instruments.deribit_instrument_id IS 'Deribit''s own numeric instrument id, when sent';
COMMENT ON COLUMN deribit.instruments.creation_ts IS 'When the exchange listed the instrument (its creation_timestamp)';
COMMENT ON COLUMN deribit.instruments.expiry IS 'Expiration (08:00 UTC for dated instruments); NULL for perpetuals and spot';
COMMENT ON COLUMN deribit.instruments.strike IS 'Options: the strike, in USD (USDC for linear options); NULL otherwise';
COMMENT ON COLUMN deribit.instruments.option_type IS 'Options: call or put; NULL otherwise';
COMMENT ON COLUMN deribit.instruments.tick_size IS 'Smallest price step, in the quote currency (options: the coin; the step may widen above a price, see raw)';
COMMENT ON COLUMN deribit.instruments.contract_size IS 'Size of one contract: USD for inverse futures (10 for BTC), the coin for options (1)';
COMMENT ON COLUMN deribit.instruments.min_trade_amount IS 'Smallest order amount: USD for inverse futures, the coin for options and linear instruments';
COMMENT ON COLUMN deribit.instruments.maker_commission IS 'Maker fee as a fraction (0.0003 = 0.03 %) of the traded amount, as sent';
COMMENT ON COLUMN deribit.instruments.taker_commission IS 'Taker fee as a fraction (0.0003 = 0.03 %) of the traded amount, as sent';
COMMENT ON COLUMN deribit.instruments.max_leverage IS 'Maximum leverage (futures), as sent';
COMMENT ON COLUMN deribit.instruments.is_active IS 'Whether the exchange listed it as active when last seen';
COMMENT ON COLUMN deribit.instruments.state IS 'The exchange''s state when last seen: open, settlement, delivered, closed, ... (kept as sent)';
COMMENT ON COLUMN deribit.instruments.first_seen IS 'When deribit-ts first stored the instrument (our clock)';
COMMENT ON COLUMN deribit.instruments.last_seen IS 'When the catalogue last listed the instrument (our clock)';
COMMENT ON COLUMN deribit.instruments.raw IS 'The instrument object exactly as the exchange last sent it';

COMMENT ON TABLE deribit.candles_1m IS
    'One-minute OHLCV candles of perpetuals, futures and options, one row per instrument and minute with trades (or a zero-volume filler candle the exchange sent); read them by name through deribit.ohlcv_1m';
COMMENT ON COLUMN deribit.candles_1m.instrument_id IS 'deribit.instruments.id';
COMMENT ON COLUMN deribit.candles_1m.ts IS 'The minute the candle opens';
COMMENT ON COLUMN deribit.candles_1m.open IS 'First trade price of the minute, in the quote currency (USD for futures and perpetuals, the coin for inverse options)';
COMMENT ON COLUMN deribit.candles_1m.high IS 'Highest trade price of the minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_1m.low IS 'Lowest trade price of the minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_1m.close IS 'Last trade price of the minute, in the quote currency (a filler candle repeats the previous close)';
COMMENT ON COLUMN deribit.candles_1m.volume IS 'Traded amount in the base currency (BTC for BTC-PERPETUAL and BTC options); 0 for a filler candle';
COMMENT ON COLUMN deribit.candles_1m.cost IS 'Traded value in the quote currency (USD for inverse futures and perpetuals, the coin for inverse options); 0 for a filler candle';

COMMENT ON TABLE deribit.funding_rate_history IS
    'Hourly funding of perpetuals as public/get_funding_rate_history returns it: one row per perpetual and hour; read it by name through deribit.funding_rates';
COMMENT ON COLUMN deribit.funding_rate_history.instrument_id IS 'deribit.instruments.id of the perpetual';
COMMENT ON COLUMN deribit.funding_rate_history.ts IS 'The hour of the record (on the hour)';
COMMENT ON COLUMN deribit.funding_rate_history.interest_1h IS 'Funding rate of the hour as a fraction of the position (1e-5 = 0.001 %); positive: longs pay shorts';
COMMENT ON COLUMN deribit.funding_rate_history.interest_8h IS 'Funding rate of the eight hours up to ts as a fraction (Deribit''s interest_8h); positive: longs pay shorts';
COMMENT ON COLUMN deribit.funding_rate_history.index_price IS 'The perpetual''s index at ts, in USD (the exchange''s own index, hourly)';
COMMENT ON COLUMN deribit.funding_rate_history.prev_index_price IS 'The index one hour before ts, in USD, as sent';

COMMENT ON TABLE deribit.index_price_history IS
    'Index prices (btc_usd, eth_usd, ...): one row per index and sample, at the finest resolution the exchange served for each period (one minute for recent days, hourly or daily before)';
COMMENT ON COLUMN deribit.index_price_history.index_name IS 'The index, e.g. btc_usd';
COMMENT ON COLUMN deribit.index_price_history.ts IS 'The sample''s instant (the start of its interval)';
COMMENT ON COLUMN deribit.index_price_history.price IS 'The index value, in its quote currency (USD for btc_usd)';
COMMENT ON COLUMN deribit.index_price_history.resolution IS 'Sampling interval of the series this row came from: 00:01:00, 01:00:00 or 1 day';

COMMENT ON TABLE deribit.option_ticker_snapshots IS
    'Option quotes taken in snapshot rounds: one row per option and round, with greeks, implied volatilities, the forward and open interest; read it by name through deribit.option_snapshots';
COMMENT ON COLUMN deribit.option_ticker_snapshots.instrument_id IS 'deribit.instruments.id of the option';
COMMENT ON COLUMN deribit.option_ticker_snapshots.ts IS 'The snapshot round''s exchange time (public/get_time at its start), shared by every option of the round';
COMMENT ON COLUMN deribit.option_ticker_snapshots.underlying_price IS 'The forward F the option is priced on (the same-expiry future, or a synthetic one), in USD';
COMMENT ON COLUMN deribit.option_ticker_snapshots.underlying_index IS 'What underlying_price is: the future of the same expiry (BTC-27SEP24), SYN.<currency>-<expiry> (synthetic forward) or index_price';
COMMENT ON COLUMN deribit.option_ticker_snapshots.index_price IS 'The spot index (e.g. btc_usd) at the quote, in USD';
COMMENT ON COLUMN deribit.option_ticker_snapshots.mark_price IS 'The exchange''s mark price in the option''s quote currency: the coin for inverse options (0.2168 BTC = 0.2168 x F USD), USDC for linear ones';
COMMENT ON COLUMN deribit.option_ticker_snapshots.mark_iv IS 'Implied volatility of the mark price, percent a year (61.27 = 61.27 %)';
COMMENT ON COLUMN deribit.option_ticker_snapshots.bid_iv IS 'Implied volatility of the best bid, percent a year; 0 when there is no bid';
COMMENT ON COLUMN deribit.option_ticker_snapshots.ask_iv IS 'Implied volatility of the best ask, percent a year';
COMMENT ON COLUMN deribit.option_ticker_snapshots.best_bid_price IS 'Best bid in the option''s quote currency (the coin for inverse options); NULL or 0 when the book has none';
COMMENT ON COLUMN deribit.option_ticker_snapshots.best_ask_price IS 'Best ask in the option''s quote currency (the coin for inverse options); NULL or 0 when the book has none';
COMMENT ON COLUMN deribit.option_ticker_snapshots.delta IS 'Black-76 delta per option on the forward, not premium-adjusted: N(d1) for a call, N(d1) - 1 for a put';
COMMENT ON COLUMN deribit.option_ticker_snapshots.gamma IS 'Gamma: change of delta per 1 USD of the forward (the exchange rounds it to 5 decimals)';
COMMENT ON COLUMN deribit.option_ticker_snapshots.vega IS 'Vega: USD per 1 point (1 %) of implied volatility';
COMMENT ON COLUMN deribit.option_ticker_snapshots.theta IS 'Theta: USD per day, capped near expiry at the time value left (the exchange''s min(1-day theta, lifetime theta))';
COMMENT ON COLUMN deribit.option_ticker_snapshots.rho IS 'Rho, spot-style (K T N(d2) / 100 for a call, -K T N(-d2) / 100 for a put): USD per 1 point (1 %) of rate';
COMMENT ON COLUMN deribit.option_ticker_snapshots.interest_rate IS 'The interest rate the exchange priced with, as sent (0 in every record seen)';
COMMENT ON COLUMN deribit.option_ticker_snapshots.open_interest IS 'Open interest in contracts of the base currency (1 contract = 1 BTC for BTC options)';
COMMENT ON COLUMN deribit.option_ticker_snapshots.quote_ts IS 'The quote''s own exchange timestamp (ticker `timestamp`, or the book summary''s `creation_timestamp`)';
COMMENT ON COLUMN deribit.option_ticker_snapshots.greeks_source IS 'ticker = the exchange''s greeks and bid/ask IVs; sql = greeks from deribit.black76_greeks on the mark IV (--bulk-only)';

COMMENT ON TABLE deribit.volatility_index IS
    'DVOL, Deribit''s 30-day implied volatility index: one-minute candles, one row per currency and minute';
COMMENT ON COLUMN deribit.volatility_index.currency IS 'The currency whose options DVOL measures (BTC, ETH)';
COMMENT ON COLUMN deribit.volatility_index.ts IS 'The minute the candle opens';
COMMENT ON COLUMN deribit.volatility_index.open IS 'DVOL at the start of the minute, percent a year (annualized 30-day implied volatility)';
COMMENT ON COLUMN deribit.volatility_index.high IS 'Highest DVOL of the minute, percent a year';
COMMENT ON COLUMN deribit.volatility_index.low IS 'Lowest DVOL of the minute, percent a year';
COMMENT ON COLUMN deribit.volatility_index.close IS 'DVOL at the end of the minute, percent a year';

COMMENT ON TABLE deribit.delivery_prices IS
    'Daily delivery (settlement) prices of an index, as public/get_delivery_prices returns them: one row per index and day';
COMMENT ON COLUMN deribit.delivery_prices.index_name IS 'The index, e.g. btc_usd';
COMMENT ON COLUMN deribit.delivery_prices.date IS 'The UTC date of the delivery, which happens at 08:00 UTC';
COMMENT ON COLUMN deribit.delivery_prices.delivery_price IS 'The price expiring instruments of this index settled at, in USD (the index''s quote currency)';

COMMENT ON TABLE deribit.trades IS
    'Every trade of the instruments backfilled or collected (expired ones included): one row per trade, each field as public/get_last_trades_by_instrument sent it (NULL where the exchange left it out)';
COMMENT ON COLUMN deribit.trades.instrument_name IS 'Deribit''s name of the instrument traded, e.g. BTC-29MAR24-60000-C';
COMMENT ON COLUMN deribit.trades.ts IS 'The trade''s exchange time, with its milliseconds';
COMMENT ON COLUMN deribit.trades.trade_id IS 'Deribit''s id of the trade (unique across instruments), as sent';
COMMENT ON COLUMN deribit.trades.trade_seq IS 'The trade''s number within its instrument, increasing with time; a hole inside a fetched range is listed by deribit.gap_report (dataset trades)';
COMMENT ON COLUMN deribit.trades.price IS 'Price of the trade in the quote currency: USD for inverse futures and perpetuals, the coin (BTC, ETH) for inverse options, USDC for linear instruments';
COMMENT ON COLUMN deribit.trades.amount IS 'Size as Deribit counts it: USD for inverse futures and perpetuals, the base coin for options and linear instruments';
COMMENT ON COLUMN deribit.trades.direction IS 'buy or sell: the side of the taker (the order that traded against the book)';
COMMENT ON COLUMN deribit.trades.tick_direction IS 'Price move from the previous trade: 0 plus tick, 1 zero-plus tick, 2 minus tick, 3 zero-minus tick';
COMMENT ON COLUMN deribit.trades.mark_price IS 'The instrument''s mark price at the trade, in the quote currency like price';
COMMENT ON COLUMN deribit.trades.index_price IS 'The underlying index (e.g. btc_usd) at the trade, in USD';
COMMENT ON COLUMN deribit.trades.iv IS 'Options: the implied volatility of the trade''s price, percent (61.27 = 61.27 % a year); NULL for futures';
COMMENT ON COLUMN deribit.trades.liquidation IS 'Set when a side was liquidated: M (maker), T (taker), MT (both); NULL otherwise';
COMMENT ON COLUMN deribit.trades.block_trade_id IS 'The block trade this trade is part of; NULL for trades on the order book';
COMMENT ON COLUMN deribit.trades.combo_id IS 'The combo (e.g. a spread) the trade was part of; NULL otherwise';
COMMENT ON COLUMN deribit.trades.contracts IS 'Size in contracts (amount / contract size), as sent; NULL where absent';
COMMENT ON COLUMN deribit.trades.block_trade_leg_count IS 'Legs of the block trade; NULL for trades that are not block trades';
COMMENT ON COLUMN deribit.trades.combo_trade_id IS 'The combo trade this leg belongs to; NULL otherwise';

-- ---------------------------------------------------------------------------------------------------------------
-- 10_market_views.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.ohlcv_1m IS
    'One-minute OHLCV by instrument name: one row per instrument and minute with a candle (filter on instrument_name and ts)';
COMMENT ON COLUMN deribit.ohlcv_1m.instrument_name IS 'Deribit''s instrument name (deribit.instruments)';
COMMENT ON COLUMN deribit.ohlcv_1m.ts IS 'The minute the candle opens';
COMMENT ON COLUMN deribit.ohlcv_1m.open IS 'First trade price, in the quote currency (USD for futures and perpetuals, the coin for inverse options)';
COMMENT ON COLUMN deribit.ohlcv_1m.high IS 'Highest trade price, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1m.low IS 'Lowest trade price, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1m.close IS 'Last trade price, in the quote currency (a zero-volume filler candle repeats the previous close)';
COMMENT ON COLUMN deribit.ohlcv_1m.volume IS 'Traded amount in the base currency (BTC for BTC-PERPETUAL and BTC options)';
COMMENT ON COLUMN deribit.ohlcv_1m.cost IS 'Traded value in the quote currency (USD for inverse futures and perpetuals, the coin for inverse options)';

COMMENT ON VIEW deribit.funding_rates IS
    'Hourly funding of perpetuals by instrument name: one row per perpetual and hour (see deribit.funding_apr for annual rates)';
COMMENT ON COLUMN deribit.funding_rates.instrument_name IS 'The perpetual, e.g. BTC-PERPETUAL';
COMMENT ON COLUMN deribit.funding_rates.ts IS 'The hour of the record (on the hour)';
COMMENT ON COLUMN deribit.funding_rates.interest_1h IS 'Funding rate of the hour as a fraction of the position (1e-5 = 0.001 %); positive: longs pay shorts';
COMMENT ON COLUMN deribit.funding_rates.interest_8h IS 'Funding rate of the eight hours up to ts as a fraction; positive: longs pay shorts';
COMMENT ON COLUMN deribit.funding_rates.index_price IS 'The perpetual''s index at ts, in USD';
COMMENT ON COLUMN deribit.funding_rates.prev_index_price IS 'The index one hour before ts, in USD, as sent';

COMMENT ON VIEW deribit.index_prices IS
    'Index prices: one row per index and sample, at the finest resolution the exchange served for each period';
COMMENT ON COLUMN deribit.index_prices.index_name IS 'The index, e.g. btc_usd';
COMMENT ON COLUMN deribit.index_prices.ts IS 'The sample''s instant (the start of its interval)';
COMMENT ON COLUMN deribit.index_prices.price IS 'The index value, in its quote currency (USD for btc_usd)';
COMMENT ON COLUMN deribit.index_prices.resolution IS 'Sampling interval of the series this row came from: 00:01:00, 01:00:00 or 1 day';

COMMENT ON VIEW deribit.option_snapshots IS
    'Option snapshots by instrument name with the contract terms: one row per option and snapshot round; ts = the round''s exchange time shared by all its rows, quote_ts = each quote''s own';
COMMENT ON COLUMN deribit.option_snapshots.instrument_name IS 'The option, e.g. BTC-27SEP24-40000-C';
COMMENT ON COLUMN deribit.option_snapshots.ts IS 'The snapshot round''s exchange time, shared by every option of the round';
COMMENT ON COLUMN deribit.option_snapshots.underlying_price IS 'The forward F the option is priced on (the same-expiry future, or a synthetic one), in USD';
COMMENT ON COLUMN deribit.option_snapshots.mark_price IS 'The exchange''s mark price in the option''s quote currency: the coin for inverse options (x underlying_price for USD), USDC for linear ones';
COMMENT ON COLUMN deribit.option_snapshots.mark_iv IS 'Implied volatility of the mark price, percent a year';
COMMENT ON COLUMN deribit.option_snapshots.bid_iv IS 'Implied volatility of the best bid, percent a year; 0 when there is no bid';
COMMENT ON COLUMN deribit.option_snapshots.ask_iv IS 'Implied volatility of the best ask, percent a year';
COMMENT ON COLUMN deribit.option_snapshots.delta IS 'Black-76 delta on the forward, not premium-adjusted: N(d1) for a call, N(d1) - 1 for a put';
COMMENT ON COLUMN deribit.option_snapshots.gamma IS 'Gamma: change of delta per 1 USD of the forward';
COMMENT ON COLUMN deribit.option_snapshots.vega IS 'Vega: USD per 1 point (1 %) of implied volatility';
COMMENT ON COLUMN deribit.option_snapshots.theta IS 'Theta: USD per day, capped near expiry at the time value left';
COMMENT ON COLUMN deribit.option_snapshots.rho IS 'Rho, spot-style (K T N(d2) / 100 for a call): USD per 1 point (1 %) of rate';
COMMENT ON COLUMN deribit.option_snapshots.open_interest IS 'Open interest in contracts of the base currency (1 contract = 1 BTC for BTC options)';
COMMENT ON COLUMN deribit.option_snapshots.underlying_index IS 'What underlying_price is: the future of the same expiry, SYN.<currency>-<expiry> (synthetic) or index_price';
COMMENT ON COLUMN deribit.option_snapshots.index_price IS 'The spot index at the quote, in USD';
COMMENT ON COLUMN deribit.option_snapshots.best_bid_price IS 'Best bid in the option''s quote currency (the coin for inverse options); NULL or 0 when the book has none';
COMMENT ON COLUMN deribit.option_snapshots.best_ask_price IS 'Best ask in the option''s quote currency (the coin for inverse options); NULL or 0 when the book has none';
COMMENT ON COLUMN deribit.option_snapshots.interest_rate IS 'The interest rate the exchange priced with, as sent (0 in every record seen)';
COMMENT ON COLUMN deribit.option_snapshots.expiry IS 'The option''s expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.option_snapshots.strike IS 'The strike, in USD (USDC for linear options)';
COMMENT ON COLUMN deribit.option_snapshots.option_type IS 'call or put';
COMMENT ON COLUMN deribit.option_snapshots.quote_ts IS 'The quote''s own exchange timestamp';
COMMENT ON COLUMN deribit.option_snapshots.greeks_source IS 'ticker = the exchange''s greeks; sql = computed by deribit.black76_greeks from the mark IV';

-- ---------------------------------------------------------------------------------------------------------------
-- 20_backfill.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.coverage IS
    'What was asked for and what is held: one row per dataset and key (instrument, index or currency), with the range asked for, what is still missing (never fetched), rows stored (= count(*) inside it) and option filler minutes held, what is fetched but not yet settled, the first and last row, expected rows, completeness (held over what was asked for) and the resolution each span is held at';
COMMENT ON COLUMN deribit.coverage.dataset IS 'The dataset: candles, funding, index, dvol, delivery, ...';
COMMENT ON COLUMN deribit.coverage.key IS 'What the dataset is keyed by: an instrument name (candles, funding), an index name (index, delivery) or a currency (dvol)';
COMMENT ON COLUMN deribit.coverage.wanted_from IS 'Start of everything asked for so far (backfills and the collector)';
COMMENT ON COLUMN deribit.coverage.wanted_until IS 'End (exclusive) of everything asked for so far';
COMMENT ON COLUMN deribit.coverage.missing IS 'The ranges asked for that were never fetched';
COMMENT ON COLUMN deribit.coverage.rows IS 'Rows stored by the fetches of what was asked for (= count(*) of the dataset''s table there)';
COMMENT ON COLUMN deribit.coverage.empty_ranges IS 'Number of fetched ranges for which the exchange had no row (candles and funding: runs of minutes or hours with neither a row nor an option''s filler; trades: 0 once settled, a span without a trade is no gap)';
COMMENT ON COLUMN deribit.coverage.complete IS 'true when nothing asked for is missing (every range fetched; the exchange may still have had no data)';
COMMENT ON COLUMN deribit.coverage.last_fetched_at IS 'When the newest fetch of this key was recorded (our clock)';
COMMENT ON COLUMN deribit.coverage.unsettled IS 'Ranges fetched while still inside the exchange''s settling time: the next run fetches them again';
COMMENT ON COLUMN deribit.coverage.first_ts IS 'The first stored row inside what was asked for';
COMMENT ON COLUMN deribit.coverage.last_ts IS 'The last stored row inside what was asked for';
COMMENT ON COLUMN deribit.coverage.expected_rows IS 'Rows a gapless series would hold in what was asked for, at the resolution each span is held at';
COMMENT ON COLUMN deribit.coverage.completeness_pct IS '(rows + filler_minutes) / expected_rows in percent, over what was asked for only (100 = gapless), 2 decimals; below 100 where the exchange had no data (an outage, an option''s minutes before its first trade) or nothing was fetched yet';
COMMENT ON COLUMN deribit.coverage.filler_minutes IS 'Options: minutes inside what was asked for that the exchange answered with a zero-volume filler candle (held in coverage.filled, not stored as rows; rebuilt by deribit.ohlcv_1m_exchange); 0 for other instruments, whose fillers are rows';
COMMENT ON COLUMN deribit.coverage.resolution IS 'The resolution rows are held at: 1 minute (candles), 1 hour (funding), for the index span by span ("1 hour 2024-01-01 00:00..2024-01-31 23:00, ..."); NULL for other datasets';

-- ---------------------------------------------------------------------------------------------------------------
-- 30_rollups.sql (candles_* are continuous aggregates on the Community edition, views on Apache)
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.candles_5m IS
    '5-minute candles rolled up from deribit.candles_1m, by instrument id: one row per instrument and bucket with candles (read them by name through deribit.ohlcv_5m)';
COMMENT ON COLUMN deribit.candles_5m.instrument_id IS 'deribit.instruments.id';
COMMENT ON COLUMN deribit.candles_5m.ts IS 'The instant the 5-minute bucket opens';
COMMENT ON COLUMN deribit.candles_5m.open IS 'Open of the bucket''s first minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_5m.high IS 'Highest high of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.candles_5m.low IS 'Lowest low of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.candles_5m.close IS 'Close of the bucket''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_5m.volume IS 'Sum of the minutes'' volume, in the base currency';
COMMENT ON COLUMN deribit.candles_5m.cost IS 'Sum of the minutes'' cost, in the quote currency';
COMMENT ON COLUMN deribit.candles_5m.candles IS 'Number of one-minute rows in the bucket (at most 5)';

COMMENT ON VIEW deribit.candles_15m IS
    '15-minute candles rolled up from deribit.candles_1m, by instrument id: one row per instrument and bucket with candles (read them by name through deribit.ohlcv_15m)';
COMMENT ON COLUMN deribit.candles_15m.instrument_id IS 'deribit.instruments.id';
COMMENT ON COLUMN deribit.candles_15m.ts IS 'The instant the 15-minute bucket opens';
COMMENT ON COLUMN deribit.candles_15m.open IS 'Open of the bucket''s first minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_15m.high IS 'Highest high of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.candles_15m.low IS 'Lowest low of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.candles_15m.close IS 'Close of the bucket''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_15m.volume IS 'Sum of the minutes'' volume, in the base currency';
COMMENT ON COLUMN deribit.candles_15m.cost IS 'Sum of the minutes'' cost, in the quote currency';
COMMENT ON COLUMN deribit.candles_15m.candles IS 'Number of one-minute rows in the bucket (at most 15)';

COMMENT ON VIEW deribit.candles_1h IS
    'Hourly candles rolled up from deribit.candles_1m, by instrument id: one row per instrument and hour with candles (read them by name through deribit.ohlcv_1h)';
COMMENT ON COLUMN deribit.candles_1h.instrument_id IS 'deribit.instruments.id';
COMMENT ON COLUMN deribit.candles_1h.ts IS 'The hour the bucket opens';
COMMENT ON COLUMN deribit.candles_1h.open IS 'Open of the hour''s first minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_1h.high IS 'Highest high of the hour, in the quote currency';
COMMENT ON COLUMN deribit.candles_1h.low IS 'Lowest low of the hour, in the quote currency';
COMMENT ON COLUMN deribit.candles_1h.close IS 'Close of the hour''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_1h.volume IS 'Sum of the minutes'' volume, in the base currency';
COMMENT ON COLUMN deribit.candles_1h.cost IS 'Sum of the minutes'' cost, in the quote currency';
COMMENT ON COLUMN deribit.candles_1h.candles IS 'Number of one-minute rows in the hour (at most 60)';

COMMENT ON VIEW deribit.candles_1d IS
    'Daily candles (UTC days) rolled up from deribit.candles_1m, by instrument id: one row per instrument and day with candles (read them by name through deribit.ohlcv_1d)';
COMMENT ON COLUMN deribit.candles_1d.instrument_id IS 'deribit.instruments.id';
COMMENT ON COLUMN deribit.candles_1d.ts IS 'Midnight UTC of the day';
COMMENT ON COLUMN deribit.candles_1d.open IS 'Open of the day''s first minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_1d.high IS 'Highest high of the day, in the quote currency';
COMMENT ON COLUMN deribit.candles_1d.low IS 'Lowest low of the day, in the quote currency';
COMMENT ON COLUMN deribit.candles_1d.close IS 'Close of the day''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.candles_1d.volume IS 'Sum of the minutes'' volume, in the base currency';
COMMENT ON COLUMN deribit.candles_1d.cost IS 'Sum of the minutes'' cost, in the quote currency';
COMMENT ON COLUMN deribit.candles_1d.candles IS 'Number of one-minute rows in the day (at most 1440)';

COMMENT ON VIEW deribit.ohlcv_5m IS
    '5-minute OHLCV rolled up from ohlcv_1m: one row per instrument and 5-minute bucket with candles (bars of the stored minutes, i.e. of trades for options); for options not the exchange''s bars, which carry the last close through untraded minutes (deribit.ohlcv_1m_exchange rebuilds those)';
COMMENT ON COLUMN deribit.ohlcv_5m.instrument_name IS 'Deribit''s instrument name';
COMMENT ON COLUMN deribit.ohlcv_5m.ts IS 'The instant the 5-minute bucket opens';
COMMENT ON COLUMN deribit.ohlcv_5m.open IS 'Open of the bucket''s first minute, in the quote currency (USD for futures and perpetuals, the coin for inverse options)';
COMMENT ON COLUMN deribit.ohlcv_5m.high IS 'Highest high of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_5m.low IS 'Lowest low of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_5m.close IS 'Close of the bucket''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_5m.volume IS 'Traded amount in the base currency';
COMMENT ON COLUMN deribit.ohlcv_5m.cost IS 'Traded value in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_5m.candles IS 'Number of one-minute rows in the bucket (at most 5)';

COMMENT ON VIEW deribit.ohlcv_15m IS
    '15-minute OHLCV rolled up from ohlcv_1m: one row per instrument and 15-minute bucket with candles (bars of the stored minutes, i.e. of trades for options); for options not the exchange''s bars, which carry the last close through untraded minutes (deribit.ohlcv_1m_exchange rebuilds those)';
COMMENT ON COLUMN deribit.ohlcv_15m.instrument_name IS 'Deribit''s instrument name';
COMMENT ON COLUMN deribit.ohlcv_15m.ts IS 'The instant the 15-minute bucket opens';
COMMENT ON COLUMN deribit.ohlcv_15m.open IS 'Open of the bucket''s first minute, in the quote currency (USD for futures and perpetuals, the coin for inverse options)';
COMMENT ON COLUMN deribit.ohlcv_15m.high IS 'Highest high of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_15m.low IS 'Lowest low of the bucket, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_15m.close IS 'Close of the bucket''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_15m.volume IS 'Traded amount in the base currency';
COMMENT ON COLUMN deribit.ohlcv_15m.cost IS 'Traded value in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_15m.candles IS 'Number of one-minute rows in the bucket (at most 15)';

COMMENT ON VIEW deribit.ohlcv_1h IS
    'Hourly OHLCV rolled up from ohlcv_1m (continuous aggregate or materialized table, by edition): one row per instrument and hour with candles (bars of the stored minutes, i.e. of trades for options); for options not the exchange''s bars, which carry the last close through untraded minutes (deribit.ohlcv_1m_exchange rebuilds those)';
COMMENT ON COLUMN deribit.ohlcv_1h.instrument_name IS 'Deribit''s instrument name';
COMMENT ON COLUMN deribit.ohlcv_1h.ts IS 'The hour the bar opens';
COMMENT ON COLUMN deribit.ohlcv_1h.open IS 'Open of the hour''s first minute, in the quote currency (USD for futures and perpetuals, the coin for inverse options)';
COMMENT ON COLUMN deribit.ohlcv_1h.high IS 'Highest high of the hour, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1h.low IS 'Lowest low of the hour, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1h.close IS 'Close of the hour''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1h.volume IS 'Traded amount in the base currency';
COMMENT ON COLUMN deribit.ohlcv_1h.cost IS 'Traded value in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1h.candles IS 'Number of one-minute rows in the hour (at most 60)';

COMMENT ON VIEW deribit.ohlcv_1d IS
    'Daily OHLCV (UTC days) rolled up from ohlcv_1m: one row per instrument and day with candles (bars of the stored minutes, i.e. of trades for options); for options not the exchange''s bars, which carry the last close through untraded minutes (deribit.ohlcv_1m_exchange rebuilds those)';
COMMENT ON COLUMN deribit.ohlcv_1d.instrument_name IS 'Deribit''s instrument name';
COMMENT ON COLUMN deribit.ohlcv_1d.ts IS 'Midnight UTC of the day';
COMMENT ON COLUMN deribit.ohlcv_1d.open IS 'Open of the day''s first minute, in the quote currency (USD for futures and perpetuals, the coin for inverse options)';
COMMENT ON COLUMN deribit.ohlcv_1d.high IS 'Highest high of the day, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1d.low IS 'Lowest low of the day, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1d.close IS 'Close of the day''s last minute, in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1d.volume IS 'Traded amount in the base currency';
COMMENT ON COLUMN deribit.ohlcv_1d.cost IS 'Traded value in the quote currency';
COMMENT ON COLUMN deribit.ohlcv_1d.candles IS 'Number of one-minute rows in the day (at most 1440)';

COMMENT ON FUNCTION deribit.ohlcv_1m_exchange(text, timestamptz, timestamptz) IS
    'The one-minute series of an instrument in [since, until) as the exchange answers it, fillers included: columns ts, open, high, low, close (the instrument''s quote: USD for futures, the coin for inverse options), volume (base currency), cost (quote), filler (true: an option minute without trades, rebuilt at the last traded close with volume and cost 0). NULL bounds are open';

-- ---------------------------------------------------------------------------------------------------------------
-- 40_quality.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.gap_report IS
    'Every maximal run of missing rows inside what was asked for, [gap_start, gap_end): one row per gap of candles, funding or trades; cause not_fetched (never fetched), exchange_empty (fetched, the exchange had no row: an outage), before_first_trade (an option''s fetched span before its first trade) or trade_seq_hole. Filler candles are held, not gaps. Candles and funding are read from the bookkeeping (coverage records), never the candles; filter on instrument_name to read one instrument only';
COMMENT ON COLUMN deribit.gap_report.dataset IS 'candles, funding or trades';
COMMENT ON COLUMN deribit.gap_report.instrument_name IS 'The instrument with the gap';
COMMENT ON COLUMN deribit.gap_report.gap_start IS 'The first missing minute (candles) or hour (funding), inclusive; trades: the time of the stored trade before the hole';
COMMENT ON COLUMN deribit.gap_report.gap_end IS 'The end of the gap, exclusive: the next stored row, or the end of what was asked for; trades: the time of the stored trade after the hole';
COMMENT ON COLUMN deribit.gap_report.missing_minutes IS 'Length of the gap in minutes (for funding too: an hour is 60)';
COMMENT ON COLUMN deribit.gap_report.cause IS 'not_fetched: never fetched; exchange_empty: fetched, and the exchange had no row there (an outage); before_first_trade: an option''s fetched minutes from its listing to its first trade (all of them when it never traded): nothing to have, not an outage; trade_seq_hole: trade numbers missing between two stored trades of a fetched range';

COMMENT ON VIEW deribit.sanity_violations IS
    'Candles that break a sanity rule, one row per candle and rule (rule names are stable): OHLC order, non-positive prices, negative or one-sided volume/cost, outside the instrument''s listing-to-expiry life, off the minute grid, absurd values (non-finite, or beyond any real price or size), spikes, and candle_trades_mismatch (a candle that is not the aggregate of its minute''s stored trades, judged only where the candles and the trades of that minute were both fetched and settled). Spikes of perpetuals and futures: a wick, or a close the next minute gives back, beyond 10 times the mean range of the previous 60 traded minutes (and at least 0.5 % of the price and two ticks). Spikes of options: a wick beyond the minute''s open and close by more than 2 % of the option''s own price and two ticks (an option''s own range is mostly zero and its body is bid-ask bounce, so neither is a scale; its body is never judged). Kept by `deribit-ts refresh` and every backfill: rows before the last refresh are stored findings (days whose candles or trades changed since are judged again by the next refresh; `refresh --full` judges everything again), newer candles are judged on read. Filter on instrument_name and ts to read only those rows';
COMMENT ON COLUMN deribit.sanity_violations.dataset IS 'The dataset of the row: candles';
COMMENT ON COLUMN deribit.sanity_violations.instrument_name IS 'The instrument of the candle';
COMMENT ON COLUMN deribit.sanity_violations.ts IS 'The minute the candle opens';
COMMENT ON COLUMN deribit.sanity_violations.rule IS 'The rule broken: high_below_open_close, low_above_open_close, high_below_low, non_positive_price, negative_volume_or_cost, volume_without_cost, cost_without_volume, outside_instrument_life, off_minute_grid, absurd_value (a non-finite value, a price above 1e12 or a volume or cost above 1e15), spike or candle_trades_mismatch';
COMMENT ON COLUMN deribit.sanity_violations.detail IS 'The values that break it, in words (prices in the instrument''s quote currency)';

-- ---------------------------------------------------------------------------------------------------------------
-- 50_basis_funding.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.basis_1m IS
    'Basis of dated futures: one row per future and minute with a candle before its expiry, its close against the index at that minute (basis, basis_pct, simple annualized on 365 days); the index comes from an index source only (index_source: index, funding_index or index_prev_hour), NULL where none exists; the perpetual''s close at that minute is beside it (perpetual_price, spread_to_perpetual)';
COMMENT ON COLUMN deribit.basis_1m.instrument_name IS 'The dated future, e.g. BTC-27SEP24';
COMMENT ON COLUMN deribit.basis_1m.ts IS 'The minute (the future''s candle opens then)';
COMMENT ON COLUMN deribit.basis_1m.future_price IS 'The future''s one-minute close, in USD';
COMMENT ON COLUMN deribit.basis_1m.index_price IS 'The index at that minute, in USD, from an index source only (which one: index_source); NULL when none: never the perpetual''s price';
COMMENT ON COLUMN deribit.basis_1m.basis IS 'future_price - index_price, in USD; NULL without an index';
COMMENT ON COLUMN deribit.basis_1m.basis_pct IS '100 * (future_price / index_price - 1), percent; NULL without an index';
COMMENT ON COLUMN deribit.basis_1m.annualized_basis_pct IS 'basis_pct * 365 / days_to_expiry: percent a year, simple (not compounded); NULL without an index and when less than one day is left (where dividing by the days left turns dollars into thousands of percent)';
COMMENT ON COLUMN deribit.basis_1m.days_to_expiry IS '(expiry - ts) in days, fractional; 0 at the 08:00 UTC settlement';
COMMENT ON COLUMN deribit.basis_1m.index_source IS 'index (the index history at that minute), funding_index (the perpetual''s funding record at that minute, on the hour), index_prev_hour (the index at the start of the minute''s hour, from the index or funding history: up to 59 minutes stale); NULL when none';
COMMENT ON COLUMN deribit.basis_1m.currency IS 'The future''s base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.basis_1m.expiry IS 'The future''s expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.basis_1m.perpetual_price IS 'The one-minute close of the perpetual of the future''s index at that minute, in USD (the index plus the perpetual''s premium: no index); NULL when it has no candle then';
COMMENT ON COLUMN deribit.basis_1m.spread_to_perpetual IS 'future_price - perpetual_price, in USD';
COMMENT ON COLUMN deribit.basis_1m.spread_to_perpetual_pct IS '100 * (future_price / perpetual_price - 1), percent';

COMMENT ON VIEW deribit.basis_term_structure IS
    'The basis term structure once an hour: one row per full hour and dated future live then where the index is known on the hour and the future traded in the hour before; the future''s price is the close of its last candle closed by the hour';
COMMENT ON COLUMN deribit.basis_term_structure.currency IS 'The futures'' base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.basis_term_structure.ts IS 'The full hour: the instant both prices are taken at';
COMMENT ON COLUMN deribit.basis_term_structure.expiry IS 'The future''s expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.basis_term_structure.days_to_expiry IS '(expiry - ts) in days, fractional';
COMMENT ON COLUMN deribit.basis_term_structure.annualized_basis_pct IS 'basis_pct * 365 / days_to_expiry: percent a year, simple (not compounded); NULL when less than one day is left';
COMMENT ON COLUMN deribit.basis_term_structure.instrument_name IS 'The dated future';
COMMENT ON COLUMN deribit.basis_term_structure.future_price IS 'The close of the future''s last one-minute candle that closed at or before ts, within the hour before it (its hourly bar''s close), in USD';
COMMENT ON COLUMN deribit.basis_term_structure.index_price IS 'The index at ts, in USD (which sample: index_source)';
COMMENT ON COLUMN deribit.basis_term_structure.basis_pct IS '100 * (future_price / index_price - 1), percent';
COMMENT ON COLUMN deribit.basis_term_structure.index_source IS 'index (the index history''s sample on the hour) or funding_index (the perpetual''s funding record on the hour)';

COMMENT ON VIEW deribit.funding_apr IS
    'Funding of perpetuals as an annual rate: one row per perpetual and hour; apr = interest_1h * 24 * 365 * 100, apr_1d / apr_7d = the same of the trailing 24 h / 7 d mean over hours_1d / hours_7d hourly records (hours missing from the history are left out of the mean)';
COMMENT ON COLUMN deribit.funding_apr.instrument_name IS 'The perpetual, e.g. BTC-PERPETUAL';
COMMENT ON COLUMN deribit.funding_apr.ts IS 'The hour of the funding record';
COMMENT ON COLUMN deribit.funding_apr.apr IS 'The hour''s funding rate annualized: interest_1h * 8760 * 100, percent a year, simple; positive: longs pay shorts';
COMMENT ON COLUMN deribit.funding_apr.apr_1d IS 'Mean hourly rate of the 24 hours ending with this row, annualized as apr (percent a year), over the hours_1d records there are (1 on a history''s first row: one hour''s rate)';
COMMENT ON COLUMN deribit.funding_apr.apr_7d IS 'Mean hourly rate of the 168 hours ending with this row, annualized as apr (percent a year), over the hours_7d records there are';
COMMENT ON COLUMN deribit.funding_apr.hours_1d IS 'Hourly funding records inside apr_1d''s mean (24 when none is missing)';
COMMENT ON COLUMN deribit.funding_apr.hours_7d IS 'Hourly funding records inside apr_7d''s mean (168 when none is missing)';

-- ---------------------------------------------------------------------------------------------------------------
-- 60_options.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON FUNCTION deribit.black76_greeks(text, double precision, double precision, double precision, double precision) IS
    'Deribit''s option value and greeks (Black-76 on the forward, r = 0, years of 365 days, iv in percent): price in USD (divide by the forward for the coin price of an inverse option), delta (not premium-adjusted), gamma per USD of the forward, vega in USD per vol point, theta in USD per day (capped at the time value), spot-style rho in USD per rate point. At or after expiry, without vol, or with sigma sqrt(T) below 1e-12: intrinsic value, delta 1/0 (call) or -1/0 (put), other greeks 0. No row outside forward and strike in [1e-100, 1e100], years <= 1000, iv <= 1e6 or for NaN input';

COMMENT ON VIEW deribit.option_snapshot_rounds IS
    'Option snapshot rounds (deribit-ts snapshot options): one row per currency and round, with its instant, options stored, whether greeks came from SQL (bulk_only) and seconds taken';
COMMENT ON COLUMN deribit.option_snapshot_rounds.currency IS 'The options'' base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.option_snapshot_rounds.ts IS 'The round''s exchange time: option_snapshots.ts of its rows';
COMMENT ON COLUMN deribit.option_snapshot_rounds.options IS 'Options stored for this currency in the round';
COMMENT ON COLUMN deribit.option_snapshot_rounds.bulk_only IS 'true: no tickers were asked, greeks come from deribit.black76_greeks on the mark IV';
COMMENT ON COLUMN deribit.option_snapshot_rounds.seconds IS 'How long the round took, in seconds (requests included)';
COMMENT ON COLUMN deribit.option_snapshot_rounds.run_id IS 'The run that took it (deribit-ts runs --run ID)';

COMMENT ON VIEW deribit.option_chain_latest IS
    'The latest snapshot round of each currency: one row per option live at that instant, with strike, expiry, days to expiry, moneyness (K/F, ln K/F), IVs (percent) and greeks';
COMMENT ON COLUMN deribit.option_chain_latest.currency IS 'The options'' base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.option_chain_latest.instrument_name IS 'The option, e.g. BTC-27SEP24-40000-C';
COMMENT ON COLUMN deribit.option_chain_latest.ts IS 'The round''s exchange time';
COMMENT ON COLUMN deribit.option_chain_latest.expiry IS 'The option''s expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.option_chain_latest.strike IS 'The strike, in USD (USDC for linear options)';
COMMENT ON COLUMN deribit.option_chain_latest.option_type IS 'call or put';
COMMENT ON COLUMN deribit.option_chain_latest.days_to_expiry IS '(expiry - ts) in days, fractional (numeric)';
COMMENT ON COLUMN deribit.option_chain_latest.underlying_price IS 'The forward F, in USD';
COMMENT ON COLUMN deribit.option_chain_latest.underlying_index IS 'What underlying_price is: the future of the same expiry, SYN.<currency>-<expiry> (synthetic) or index_price';
COMMENT ON COLUMN deribit.option_chain_latest.index_price IS 'The spot index at the quote, in USD';
COMMENT ON COLUMN deribit.option_chain_latest.moneyness IS 'strike / underlying_price (K/F), a ratio';
COMMENT ON COLUMN deribit.option_chain_latest.log_moneyness IS 'ln(strike / underlying_price) = ln(K/F)';
COMMENT ON COLUMN deribit.option_chain_latest.mark_price IS 'The exchange''s mark price in the option''s quote currency (the coin for inverse options)';
COMMENT ON COLUMN deribit.option_chain_latest.mark_iv IS 'Implied volatility of the mark, percent a year';
COMMENT ON COLUMN deribit.option_chain_latest.bid_iv IS 'Implied volatility of the best bid, percent a year; 0 when there is no bid';
COMMENT ON COLUMN deribit.option_chain_latest.ask_iv IS 'Implied volatility of the best ask, percent a year';
COMMENT ON COLUMN deribit.option_chain_latest.best_bid_price IS 'Best bid in the option''s quote currency (the coin for inverse options)';
COMMENT ON COLUMN deribit.option_chain_latest.best_ask_price IS 'Best ask in the option''s quote currency (the coin for inverse options)';
COMMENT ON COLUMN deribit.option_chain_latest.delta IS 'Black-76 delta on the forward, not premium-adjusted';
COMMENT ON COLUMN deribit.option_chain_latest.gamma IS 'Gamma per 1 USD of the forward';
COMMENT ON COLUMN deribit.option_chain_latest.vega IS 'Vega: USD per 1 point (1 %) of implied volatility';
COMMENT ON COLUMN deribit.option_chain_latest.theta IS 'Theta: USD per day, capped near expiry at the time value left';
COMMENT ON COLUMN deribit.option_chain_latest.rho IS 'Rho, spot-style: USD per 1 point (1 %) of rate';
COMMENT ON COLUMN deribit.option_chain_latest.open_interest IS 'Open interest in contracts of the base currency (1 contract = 1 BTC for BTC options)';
COMMENT ON COLUMN deribit.option_chain_latest.greeks_source IS 'ticker = the exchange''s greeks; sql = computed by deribit.black76_greeks from the mark IV';
COMMENT ON COLUMN deribit.option_chain_latest.quote_ts IS 'The quote''s own exchange timestamp';

COMMENT ON VIEW deribit.iv_smile IS
    'The smile of every snapshot round: one row per out-of-the-money option of each expiry (calls at or above the forward, puts below), with its log-moneyness and mark IV';
COMMENT ON COLUMN deribit.iv_smile.currency IS 'The options'' base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.iv_smile.ts IS 'The round''s exchange time';
COMMENT ON COLUMN deribit.iv_smile.expiry IS 'The expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.iv_smile.strike IS 'The strike, in USD (USDC for linear options)';
COMMENT ON COLUMN deribit.iv_smile.option_type IS 'call (strike at or above the forward) or put (below)';
COMMENT ON COLUMN deribit.iv_smile.log_moneyness IS 'ln(strike / forward), the forward being the option''s underlying_price';
COMMENT ON COLUMN deribit.iv_smile.mark_iv IS 'Implied volatility of the mark, percent a year';
COMMENT ON COLUMN deribit.iv_smile.delta IS 'Black-76 delta on the forward, not premium-adjusted';

COMMENT ON VIEW deribit.iv_term_structure IS
    'ATM implied volatility: one row per snapshot round and expiry, the smile''s mark IV interpolated linearly in log-moneyness between the two strikes around the forward; no row when the forward lies outside the strikes';
COMMENT ON COLUMN deribit.iv_term_structure.currency IS 'The options'' base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.iv_term_structure.ts IS 'The round''s exchange time';
COMMENT ON COLUMN deribit.iv_term_structure.expiry IS 'The expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.iv_term_structure.days_to_expiry IS '(expiry - ts) in days, fractional (numeric)';
COMMENT ON COLUMN deribit.iv_term_structure.atm_iv IS 'At-the-money implied volatility, percent a year (the forward: the round''s mean underlying_price of the expiry)';

COMMENT ON VIEW deribit.iv_skew IS
    '25-delta risk reversal and butterfly: one row per snapshot round and expiry whose two wings each interpolate between two quoted options around 25 delta (however far apart their strikes); the call IV at delta 0.25 and the put IV at delta -0.25, each interpolated linearly in delta: rr25/bf25 with Deribit''s delta (not premium-adjusted), rr25_pa/bf25_pa with the premium-adjusted delta';
COMMENT ON COLUMN deribit.iv_skew.currency IS 'The options'' base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.iv_skew.ts IS 'The round''s exchange time';
COMMENT ON COLUMN deribit.iv_skew.expiry IS 'The expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.iv_skew.rr25 IS '25-delta risk reversal: call IV - put IV, in vol points (percent)';
COMMENT ON COLUMN deribit.iv_skew.bf25 IS '25-delta butterfly: (call IV + put IV) / 2 - ATM IV (iv_term_structure), in vol points (percent)';
COMMENT ON COLUMN deribit.iv_skew.rr25_pa IS '25-delta risk reversal on the premium-adjusted delta (delta - mark_price in coin: K/F N(d2) for a call, -K/F N(-d2) for a put; the convention for coin-margined options): call IV - put IV, in vol points (percent)';
COMMENT ON COLUMN deribit.iv_skew.bf25_pa IS '25-delta butterfly on the premium-adjusted delta: (call IV + put IV) / 2 - ATM IV, in vol points (percent)';

-- ---------------------------------------------------------------------------------------------------------------
-- 65_research.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.iv_constant_maturity IS
    'Constant-maturity implied volatility: one row per currency, snapshot round and tenor (7, 14, 30, 60, 90, 180 days); ATM IV linear in total variance (iv^2 x T) between the two expiries around the tenor, rr25 and bf25 linear in T; NULL outside the listed expiries (no extrapolation)';
COMMENT ON COLUMN deribit.iv_constant_maturity.currency IS 'Base currency of the options (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.iv_constant_maturity.ts IS 'The snapshot round''s exchange time (timestamptz, UTC)';
COMMENT ON COLUMN deribit.iv_constant_maturity.tenor_days IS 'Constant maturity in calendar days: 7, 14, 30, 60, 90 or 180';
COMMENT ON COLUMN deribit.iv_constant_maturity.atm_iv IS 'ATM implied volatility at the tenor, percent (annualized, like DVOL): sqrt of the total variance interpolated linearly in T between the bracketing expiries'' ATM IVs (iv_term_structure) / tenor; NULL before the first or after the last expiry';
COMMENT ON COLUMN deribit.iv_constant_maturity.rr25 IS '25-delta risk reversal at the tenor (call IV - put IV, vol points, delta not premium-adjusted, from iv_skew), linear in T between the bracketing expiries; NULL outside them';
COMMENT ON COLUMN deribit.iv_constant_maturity.bf25 IS '25-delta butterfly at the tenor ((call IV + put IV) / 2 - ATM IV, vol points, from iv_skew), linear in T between the bracketing expiries; NULL outside them';

COMMENT ON VIEW deribit.realized_vol_1d IS
    'Realized volatility of a future or perpetual per UTC day, annualized in percent like DVOL, from one-minute log returns of closes between candles one minute apart (a gap is skipped); as of the last deribit-ts refresh';
COMMENT ON COLUMN deribit.realized_vol_1d.instrument_name IS 'Future or perpetual, e.g. BTC-PERPETUAL';
COMMENT ON COLUMN deribit.realized_vol_1d.day IS 'UTC calendar day (date); its returns are those ending in it';
COMMENT ON COLUMN deribit.realized_vol_1d.rv_1d IS 'Percent a year: 100 x sqrt(525,600 x mean squared one-minute log return) over the day; NULL without a return';
COMMENT ON COLUMN deribit.realized_vol_1d.rv_7d IS 'Percent a year: the same over the 7 calendar days ending with this day (returns of the days held, weighted by count)';
COMMENT ON COLUMN deribit.realized_vol_1d.rv_30d IS 'Percent a year: the same over the 30 calendar days ending with this day';
COMMENT ON COLUMN deribit.realized_vol_1d.parkinson_1d IS 'Percent a year: Parkinson''s estimator from the day''s one-minute highs and lows, 100 x sqrt(525,600 x mean(ln(high/low)^2) / (4 ln 2))';

COMMENT ON VIEW deribit.vol_risk_premium IS
    'Per currency and UTC day: DVOL against the trailing 30-day realized volatility of the currency''s perpetual (the inverse one where several exist); dvol NULL on days without DVOL candles';
COMMENT ON COLUMN deribit.vol_risk_premium.currency IS 'Base currency (BTC, ETH, ...)';
COMMENT ON COLUMN deribit.vol_risk_premium.day IS 'UTC calendar day (date)';
COMMENT ON COLUMN deribit.vol_risk_premium.dvol IS 'DVOL (percent, 30-day implied) at the day''s close: the last one-minute DVOL close of the day';
COMMENT ON COLUMN deribit.vol_risk_premium.rv_30d IS 'Realized volatility of the perpetual over the 30 days ending with this day, percent a year (realized_vol_1d.rv_30d)';
COMMENT ON COLUMN deribit.vol_risk_premium.vrp IS 'dvol - rv_30d, vol points (implied over trailing realized; positive: options priced above what was realized)';

COMMENT ON VIEW deribit.open_interest_by_strike IS
    'Open interest per currency, snapshot round, live expiry and strike, calls and puts side by side';
COMMENT ON COLUMN deribit.open_interest_by_strike.currency IS 'Base currency of the options';
COMMENT ON COLUMN deribit.open_interest_by_strike.ts IS 'The snapshot round''s exchange time';
COMMENT ON COLUMN deribit.open_interest_by_strike.expiry IS 'Expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.open_interest_by_strike.strike IS 'Strike, USD';
COMMENT ON COLUMN deribit.open_interest_by_strike.call_oi IS 'Call open interest, contracts (= base currency, e.g. BTC); NULL where no call of this strike was in the round';
COMMENT ON COLUMN deribit.open_interest_by_strike.put_oi IS 'Put open interest, contracts (base currency); NULL where no put of this strike was in the round';
COMMENT ON COLUMN deribit.open_interest_by_strike.call_oi_usd IS 'Call open interest x the option''s index price (the ticker''s index_price), USD';
COMMENT ON COLUMN deribit.open_interest_by_strike.put_oi_usd IS 'Put open interest x the option''s index price, USD';

COMMENT ON VIEW deribit.max_pain IS
    'Max pain per currency, snapshot round and live expiry: the listed strike at which settlement would pay option holders the least';
COMMENT ON COLUMN deribit.max_pain.currency IS 'Base currency of the options';
COMMENT ON COLUMN deribit.max_pain.ts IS 'The snapshot round''s exchange time';
COMMENT ON COLUMN deribit.max_pain.expiry IS 'Expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.max_pain.max_pain_strike IS 'USD: the strike K* minimizing sum(call oi x max(K* - K, 0)) + sum(put oi x max(K - K*, 0)); the lowest on a tie; NULL without open interest';
COMMENT ON COLUMN deribit.max_pain.payout_usd IS 'USD: that minimum, the options'' intrinsic value at K* times their open interest (inverse options pay it in coin)';

COMMENT ON VIEW deribit.put_call_ratio IS 'Put/call open interest ratio per currency, snapshot round and live expiry';
COMMENT ON COLUMN deribit.put_call_ratio.currency IS 'Base currency of the options';
COMMENT ON COLUMN deribit.put_call_ratio.ts IS 'The snapshot round''s exchange time';
COMMENT ON COLUMN deribit.put_call_ratio.expiry IS 'Expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.put_call_ratio.oi_ratio IS 'Put open interest / call open interest (contracts / contracts, a plain ratio); NULL without call open interest';

COMMENT ON VIEW deribit.futures_settlement IS
    'Every dated future that settled (its index has a delivery price on the expiry date): delivery price against its last one-minute close';
COMMENT ON COLUMN deribit.futures_settlement.instrument_name IS 'The dated future, e.g. BTC-29MAR24';
COMMENT ON COLUMN deribit.futures_settlement.expiry IS 'Expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.futures_settlement.delivery_price IS 'USD: the index''s delivery price of the expiry date (delivery_prices)';
COMMENT ON COLUMN deribit.futures_settlement.last_close IS 'USD: close of the future''s last one-minute candle before expiry; NULL without candles';
COMMENT ON COLUMN deribit.futures_settlement.settlement_basis IS 'USD: last_close - delivery_price';
COMMENT ON COLUMN deribit.futures_settlement.settlement_basis_pct IS 'Percent: 100 x (last_close / delivery_price - 1)';

COMMENT ON VIEW deribit.perpetual_premium_1m IS
    'Per perpetual and minute where its index is known (an index history sample at that minute, else the funding history''s index on the hour): the one-minute close against the index';
COMMENT ON COLUMN deribit.perpetual_premium_1m.instrument_name IS 'The perpetual, e.g. BTC-PERPETUAL';
COMMENT ON COLUMN deribit.perpetual_premium_1m.ts IS 'The minute (candle open time, UTC)';
COMMENT ON COLUMN deribit.perpetual_premium_1m.perpetual_price IS 'USD: the perpetual''s one-minute close';
COMMENT ON COLUMN deribit.perpetual_premium_1m.index_price IS 'USD: the index (price_index) at that minute: index history first, funding history''s index_price second; never a stand-in';
COMMENT ON COLUMN deribit.perpetual_premium_1m.premium_pct IS 'Percent: 100 x (perpetual_price / index_price - 1), not annualized';

COMMENT ON VIEW deribit.funding_carry IS
    'Per perpetual and funding hour: the funding a long position has paid since the first hour of its funding history';
COMMENT ON COLUMN deribit.funding_carry.instrument_name IS 'The perpetual, e.g. BTC-PERPETUAL';
COMMENT ON COLUMN deribit.funding_carry.ts IS 'The funding hour (funding_rates.ts)';
COMMENT ON COLUMN deribit.funding_carry.cumulative_funding_pct IS 'Percent of notional, simple (not compounded): 100 x running sum of interest_1h from the first row of history through this hour; positive = longs paid; missing hours count for nothing; a ts filter keeps the sum from the start';

COMMENT ON VIEW deribit.svi_fit IS
    'Raw SVI w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)) fitted to the out-of-the-money mark IVs (iv_smile) of each snapshot round and expiry with at least 5 strikes; w = total implied variance (iv/100)^2 x T (T in 365-day years), k = ln(K/F); quasi-explicit least squares (Zeliade)';
COMMENT ON COLUMN deribit.svi_fit.currency IS 'Base currency of the options';
COMMENT ON COLUMN deribit.svi_fit.ts IS 'The snapshot round''s exchange time';
COMMENT ON COLUMN deribit.svi_fit.expiry IS 'Expiration (08:00 UTC)';
COMMENT ON COLUMN deribit.svi_fit.a IS 'SVI a: level of total variance (dimensionless, in [0, max w] by the fit''s constraints)';
COMMENT ON COLUMN deribit.svi_fit.b IS 'SVI b >= 0: slope of the wings in total variance per unit of log-moneyness (b (1 + |rho|) <= 4)';
COMMENT ON COLUMN deribit.svi_fit.rho IS 'SVI rho in [-1, 1]: skew (negative: puts richer)';
COMMENT ON COLUMN deribit.svi_fit.m IS 'SVI m: log-moneyness of the smile''s vertex';
COMMENT ON COLUMN deribit.svi_fit.sigma IS 'SVI sigma > 0: curvature at the vertex, log-moneyness units';
COMMENT ON COLUMN deribit.svi_fit.rmse_iv IS 'Root mean square of fitted IV - mark IV over the fitted options, vol points (percent)';
COMMENT ON COLUMN deribit.svi_fit.butterfly_arbitrage IS 'true: the fitted slice has a negative density (Gatheral''s g(k) < 0, or w <= 0) somewhere within one unit of log-moneyness beyond the quoted strikes';

-- ---------------------------------------------------------------------------------------------------------------
-- 65_trades.sql
-- ---------------------------------------------------------------------------------------------------------------

COMMENT ON VIEW deribit.option_trades IS
    'One row per option trade of deribit.trades, with its instrument''s currency, expiry, strike and type, and what follows from the trade: days to expiry, log-moneyness against the index at the trade, Black-76 delta at the trade''s IV';
COMMENT ON COLUMN deribit.option_trades.instrument_name IS 'The option, e.g. BTC-29MAR24-60000-C';
COMMENT ON COLUMN deribit.option_trades.ts IS 'The trade''s exchange time, with its milliseconds';
COMMENT ON COLUMN deribit.option_trades.trade_id IS 'Deribit''s id of the trade';
COMMENT ON COLUMN deribit.option_trades.trade_seq IS 'The trade''s number within its option, increasing with time';
COMMENT ON COLUMN deribit.option_trades.price IS 'Price of the trade in the coin (BTC, ETH) for inverse options, USDC for linear ones';
COMMENT ON COLUMN deribit.option_trades.amount IS 'Size in the base coin (1.0 = options on one BTC of underlying)';
COMMENT ON COLUMN deribit.option_trades.direction IS 'buy or sell: the side of the taker';
COMMENT ON COLUMN deribit.option_trades.iv IS 'Implied volatility of the trade''s price, percent, as Deribit sent it';
COMMENT ON COLUMN deribit.option_trades.mark_price IS 'The option''s mark price at the trade, in the coin like price';
COMMENT ON COLUMN deribit.option_trades.index_price IS 'The underlying index at the trade, USD';
COMMENT ON COLUMN deribit.option_trades.block_trade_id IS 'The block trade this trade is part of; NULL for order-book trades';
COMMENT ON COLUMN deribit.option_trades.liquidation IS 'M (maker), T (taker) or MT when a side was liquidated; NULL otherwise';
COMMENT ON COLUMN deribit.option_trades.currency IS 'The option''s base currency (BTC, ETH)';
COMMENT ON COLUMN deribit.option_trades.expiry IS 'The option''s expiry (08:00 UTC)';
COMMENT ON COLUMN deribit.option_trades.strike IS 'Strike, USD (USDC for linear options)';
COMMENT ON COLUMN deribit.option_trades.option_type IS 'call or put';
COMMENT ON COLUMN deribit.option_trades.days_to_expiry IS 'Time from the trade to the expiry, days (fractional)';
COMMENT ON COLUMN deribit.option_trades.log_moneyness IS 'ln(strike / index_price at the trade); negative for strikes below the index; NULL without an index price';
COMMENT ON COLUMN deribit.option_trades.delta IS 'Black-76 delta (deribit.black76_greeks) at the trade''s iv with the index at the trade as the forward (a trade carries no forward: off by the basis for long-dated options); NULL without an iv or at expiry';
COMMENT ON COLUMN deribit.option_trades.usd_notional IS 'amount * index_price: the underlying''s value traded, USD';

COMMENT ON VIEW deribit.trade_smile_1d IS
    'The daily smile from trades: one row per option and UTC day it traded, as far back as the tape goes (read from deribit_ts.trade_days, the tape''s daily sums kept current as trades are written)';
COMMENT ON COLUMN deribit.trade_smile_1d.currency IS 'The option''s base currency (BTC, ETH)';
COMMENT ON COLUMN deribit.trade_smile_1d.day IS 'The UTC day of the trades';
COMMENT ON COLUMN deribit.trade_smile_1d.expiry IS 'The option''s expiry (08:00 UTC)';
COMMENT ON COLUMN deribit.trade_smile_1d.strike IS 'Strike, USD';
COMMENT ON COLUMN deribit.trade_smile_1d.option_type IS 'call or put';
COMMENT ON COLUMN deribit.trade_smile_1d.trades IS 'Trades of the option that day';
COMMENT ON COLUMN deribit.trade_smile_1d.volume IS 'Sum of amount, base coin';
COMMENT ON COLUMN deribit.trade_smile_1d.vwap_iv IS 'Implied volatility averaged over the day''s trades weighted by amount, percent';
COMMENT ON COLUMN deribit.trade_smile_1d.min_iv IS 'Lowest trade iv of the day, percent';
COMMENT ON COLUMN deribit.trade_smile_1d.max_iv IS 'Highest trade iv of the day, percent';
COMMENT ON COLUMN deribit.trade_smile_1d.log_moneyness IS 'ln(strike / index) averaged over the day''s trades weighted by amount (the index at each trade)';

COMMENT ON VIEW deribit.option_flow_1d IS
    'Option flow per currency, UTC day and expiry from the trade tape: call and put volume, their ratio, block volume and trades';
COMMENT ON COLUMN deribit.option_flow_1d.currency IS 'Base currency (BTC, ETH)';
COMMENT ON COLUMN deribit.option_flow_1d.day IS 'The UTC day of the trades';
COMMENT ON COLUMN deribit.option_flow_1d.expiry IS 'The options'' expiry (08:00 UTC)';
COMMENT ON COLUMN deribit.option_flow_1d.call_volume IS 'Sum of amount of the calls traded, base coin';
COMMENT ON COLUMN deribit.option_flow_1d.put_volume IS 'Sum of amount of the puts traded, base coin';
COMMENT ON COLUMN deribit.option_flow_1d.put_call_ratio IS 'put_volume / call_volume (NULL without call volume)';
COMMENT ON COLUMN deribit.option_flow_1d.block_volume IS 'Sum of amount of block trades (calls and puts), base coin';
COMMENT ON COLUMN deribit.option_flow_1d.trades IS 'Trades of the expiry''s options that day';

COMMENT ON VIEW deribit.liquidations IS
    'Liquidation trades of futures and perpetuals: the trades of deribit.trades with a liquidation flag';
COMMENT ON COLUMN deribit.liquidations.instrument_name IS 'The future or perpetual, e.g. BTC-PERPETUAL';
COMMENT ON COLUMN deribit.liquidations.ts IS 'The trade''s exchange time, with its milliseconds';
COMMENT ON COLUMN deribit.liquidations.trade_id IS 'Deribit''s id of the trade';
COMMENT ON COLUMN deribit.liquidations.trade_seq IS 'The trade''s number within its instrument';
COMMENT ON COLUMN deribit.liquidations.price IS 'Price, USD (USDC for linear instruments)';
COMMENT ON COLUMN deribit.liquidations.amount IS 'Size as Deribit counts it: USD for inverse futures and perpetuals, the base coin for linear ones';
COMMENT ON COLUMN deribit.liquidations.direction IS 'buy or sell: the side of the taker';
COMMENT ON COLUMN deribit.liquidations.liquidation IS 'M (the maker side was liquidated), T (the taker side) or MT (both)';
COMMENT ON COLUMN deribit.liquidations.mark_price IS 'The instrument''s mark price at the trade, USD';
COMMENT ON COLUMN deribit.liquidations.index_price IS 'The underlying index at the trade, USD';
COMMENT ON COLUMN deribit.liquidations.currency IS 'Base currency (BTC, ETH)';
COMMENT ON COLUMN deribit.liquidations.is_perpetual IS 'true for perpetuals, false for dated futures';
COMMENT ON COLUMN deribit.liquidations.usd_notional IS 'Value traded, USD: amount for inverse instruments (already USD), amount * price for linear ones';
