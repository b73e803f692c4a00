-- Queries of `deribit-ts runs` (deribit_ts/cli/runs.py).

-- name: recent
-- The newest %(last)s runs, each with its traffic and a JSON object of per-dataset figures.
SELECT r.run_id, r.command, r.status, r.started_at, r.finished_at,
       extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float AS seconds,
       -- A run's traffic is logged every few seconds and at its end; a killed run's last seconds are still in its
       -- tasks' counts, so the run line is never less than the sum of its dataset lines.
       greatest(r.requests, sum(d.requests))::bigint AS requests,
       greatest(r.retries, sum(d.retries))::bigint AS retries,
       r.throttled, r.errors, r.error,
       coalesce(jsonb_object_agg(d.dataset, jsonb_build_object(
           'tasks', d.tasks, 'failed_tasks', d.failed_tasks, 'rows_fetched', d.rows_fetched,
           'inserted', d.inserted, 'revised', d.revised, 'requests', d.requests, 'retries', d.retries,
           'errors', d.errors, 'task_seconds', extract(epoch FROM d.task_time)))
           FILTER (WHERE d.dataset IS NOT NULL), '{}') AS datasets
  FROM deribit_ts.runs r
  LEFT JOIN deribit_ts.run_datasets d USING (run_id)
 GROUP BY r.run_id
 ORDER BY r.run_id DESC
 LIMIT %(last)s;

-- name: tasks
-- The tasks of run %(run_id)s, failed ones first, with the exchange's message.
SELECT t.task_id, t.dataset, t.key, t.range_start, t.range_end, t.state, rt.rows_fetched, rt.inserted,
       rt.revised, rt.requests, rt.retries, rt.errors, extract(epoch FROM rt.duration)::float AS seconds,
       coalesce(rt.error, t.last_error) AS error
  FROM deribit_ts.run_tasks rt
  JOIN deribit_ts.tasks t USING (task_id)
 WHERE rt.run_id = %(run_id)s
 ORDER BY rt.errors > 0 DESC, t.dataset, t.key, t.range_start;
