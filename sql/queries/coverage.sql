-- Queries of `deribit-ts coverage` (deribit_ts/cli/coverage.py). %(dataset)s: one dataset, or NULL for all.

-- name: keys
-- Per dataset and key: the range asked for, rows stored, what is missing and what is still settling.
SELECT dataset, key, wanted_from, wanted_until, rows, complete,
       date_trunc('minute', (SELECT coalesce(sum(upper(m) - lower(m)), interval '0') FROM unnest(missing) AS m))
           AS missing_time,
       missing::text AS missing,
       date_trunc('minute', (SELECT coalesce(sum(upper(u) - lower(u)), interval '0') FROM unnest(unsettled) AS u))
           AS unsettled_time,
       first_ts, last_ts, expected_rows, completeness_pct, resolution
  FROM deribit.coverage
 WHERE (%(dataset)s::text IS NULL OR dataset = %(dataset)s)
 ORDER BY dataset, key;

-- name: summary
-- Per dataset: keys, keys complete, rows stored, the first and last row, and the time never fetched.
SELECT dataset, count(*) AS keys, count(*) FILTER (WHERE complete) AS complete_keys, sum(rows)::bigint AS rows,
       min(first_ts) AS first_ts, max(last_ts) AS last_ts,
       date_trunc('minute', coalesce(sum((SELECT sum(upper(m) - lower(m)) FROM unnest(missing) AS m)),
                                     interval '0')) AS missing_time
  FROM deribit.coverage
 WHERE (%(dataset)s::text IS NULL OR dataset = %(dataset)s)
 GROUP BY dataset
 ORDER BY dataset;

-- name: datasets
-- Every dataset that has coverage records.
SELECT DISTINCT dataset FROM deribit.coverage;
