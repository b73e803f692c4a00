-- deribit-ts: edition=timescale
-- deribit-ts: no-transaction
--
-- Community edition: 0047 created the 15-minute and daily continuous aggregates again WITH NO DATA, leaving them
-- to the next full refresh and answering from the level below meanwhile (real-time aggregation). But their
-- refresh policies (every 15 minutes and every hour) may run first: a policy materializes only its recent window
-- (the last 3 or 5 days) and moves the aggregate's watermark to that window's end, and real-time aggregation
-- answers only above the watermark, so every older bucket would be missing from candles_15m/candles_1d (and
-- ohlcv_15m/1d) until the full refresh. Refreshing every level over its whole range here, in order, closes that
-- window at the upgrade (outside a transaction: a refresh cannot run inside one). Where 0047 was applied before
-- and refreshed since, this recomputes nothing: Timescale's invalidation log says nothing changed. On a large
-- history it takes as long as the first `deribit-ts refresh` after 0047 would have.
CALL refresh_continuous_aggregate('deribit.candles_5m', NULL, NULL);
CALL refresh_continuous_aggregate('deribit.candles_15m', NULL, NULL);
CALL refresh_continuous_aggregate('deribit.candles_1h', NULL, NULL);
CALL refresh_continuous_aggregate('deribit.candles_1d', NULL, NULL);
