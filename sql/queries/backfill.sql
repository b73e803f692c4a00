-- Queries of the backfill's planning and summary (deribit_ts/ingest/backfill.py).

-- name: instrument_wants
-- Per instrument of %(currencies)s and the chosen kinds (%(names)s only, unless NULL): the range wanted, its
-- priority and its due time (the expiry), most urgent first.
SELECT instrument_name,
       greatest(date_trunc(%(unit)s, coalesce(creation_ts, %(default_start)s)), %(since)s) AS want_from,
       least(coalesce(expiry, 'infinity'), %(until)s, %(horizon)s) AS want_until,
       deribit_ts.candle_priority(is_perpetual, expiry, %(now)s) AS priority,
       CASE WHEN NOT is_perpetual THEN expiry END AS due
  FROM deribit.instruments
 WHERE base_currency = ANY(%(currencies)s)
   AND ((%(perpetual)s AND kind = 'future' AND is_perpetual)
        OR (%(future)s AND kind = 'future' AND NOT is_perpetual)
        OR (%(option)s AND kind = 'option'))
   AND (%(names)s::text[] IS NULL OR instrument_name = ANY(%(names)s))
 ORDER BY priority, due, instrument_name;

-- name: unfinished_keys
-- Per dataset, the keys with unfinished tasks whose priority is in [%(lowest)s, %(highest)s] (what a resume works).
SELECT dataset, array_agg(DISTINCT key ORDER BY key) FROM deribit_ts.tasks
 WHERE state IN ('pending', 'running') AND priority BETWEEN %(lowest)s AND %(highest)s
 GROUP BY dataset;

-- name: open_tasks_by_key
-- Open backfill tasks inside [%(lower)s, %(upper)s) of every key of %(keys)s that has a target, 0 for those with
-- nothing left to do.
SELECT t.key, count(k.task_id) FROM deribit_ts.targets t
  LEFT JOIN deribit_ts.tasks k
    ON k.dataset = t.dataset AND k.key = t.key AND k.state IN ('pending', 'running') AND k.priority >= 1
   AND deribit_ts.task_within(k.cursor, k.range_start, k.range_end, tstzrange(%(lower)s, %(upper)s), false)
 WHERE t.dataset = %(dataset)s AND t.key = ANY(%(keys)s)
 GROUP BY t.key;

-- name: run_datasets
-- What run %(run_id)s did per dataset.
SELECT dataset, tasks, rows_fetched, inserted, revised, requests, retries, errors
  FROM deribit_ts.run_datasets WHERE run_id = %(run_id)s ORDER BY dataset;

-- name: coverage
-- Keys of %(keys)s with coverage of %(dataset)s, how many of them complete, and their rows.
SELECT count(*), count(*) FILTER (WHERE complete), coalesce(sum(rows), 0)
  FROM deribit.coverage WHERE dataset = %(dataset)s AND key = ANY(%(keys)s);
