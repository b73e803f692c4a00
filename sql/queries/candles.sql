-- Queries of the candles of futures and options (deribit_ts/ingest/candles.py, options.py).

-- name: any_row
-- An index probe: does instrument %(instrument_id)s already have a row in [%(start)s, %(end)s)? Only then is an
-- upsert needed.
SELECT EXISTS (SELECT 1 FROM deribit.candles_1m
                WHERE instrument_id = %(instrument_id)s AND ts >= %(start)s AND ts < %(end)s);

-- name: delete_filled
-- Stored candles of an option at the minutes %(minutes)s (within [%(start)s, %(end)s)) that the exchange now
-- answers with fillers: a traded candle it no longer has.
DELETE FROM deribit.candles_1m
 WHERE instrument_id = %(instrument_id)s AND ts >= %(start)s AND ts < %(end)s AND ts = ANY(%(minutes)s);

-- name: tier_plan
-- What the planned option tasks of %(dataset)s for %(keys)s amount to per tier. Requests: one per window of
-- %(window_s)s seconds of a task's remaining range (the least it takes; an option with no trade yet answers
-- no_data and may take a few more).
SELECT deribit_ts.option_tier(i.expiry, %(now)s) AS tier,
       count(DISTINCT t.key) AS options,
       count(*) AS tasks,
       coalesce(sum(ceil(extract(epoch FROM t.range_end - coalesce(t.cursor, t.range_start)) / %(window_s)s)),
                0)::bigint AS requests
  FROM deribit_ts.tasks t
  JOIN deribit.instruments i ON i.instrument_name = t.key
 WHERE t.dataset = %(dataset)s AND t.state IN ('pending', 'running') AND t.key = ANY(%(keys)s)
 GROUP BY 1;
