-- Queries of the shared backfill plan (deribit_ts/ingest/tasks.py): thin calls of the functions in
-- sql/20_backfill.sql, and what recovery needs to know about this host's runs.

-- name: plan
-- Plan the tasks of %(dataset)s %(key)s over [%(start)s, %(end)s) in pieces of %(chunk)s; returns how many are new.
SELECT deribit_ts.plan_tasks(%(dataset)s, %(key)s, tstzrange(%(start)s, %(end)s), %(chunk)s, %(priority)s, %(due)s);

-- name: claim
-- The next task of %(datasets)s (and %(keys)s, NULL: any) with a priority in [%(lowest)s, %(highest)s] whose
-- unfinished part lies inside its dataset's range of %(within)s (NULL: anywhere), leased to %(owner)s.
SELECT *
  FROM deribit_ts.claim_task(%(owner)s, %(lease)s, %(datasets)s, %(keys)s, %(lowest)s, %(highest)s,
                             %(within)s::tstzrange[]);

-- name: progress
-- One committed window of task %(task_id)s; %(filled_from)s/%(filled_until)s: the [from, until) runs of filler
-- minutes not stored as rows. False: the lease was lost.
SELECT deribit_ts.task_progress(
           %(task_id)s, %(owner)s, %(lease)s, %(run_id)s, %(start)s, %(end)s, %(final_until)s, %(rows)s,
           %(inserted)s, %(revised)s, %(requests)s, %(retries)s,
           (SELECT range_agg(tstzrange(a, b))
              FROM unnest(%(filled_from)s::timestamptz[], %(filled_until)s::timestamptz[]) AS u(a, b)));

-- name: finish
SELECT deribit_ts.finish_task(%(task_id)s, %(owner)s, %(run_id)s, %(error)s, %(duration)s);

-- name: release
-- Give back the running tasks of %(owners)s; returns how many.
SELECT deribit_ts.release_tasks(%(owners)s);

-- name: running_owners
-- Owners of running tasks whose identity starts with %(prefix)s (this host's).
SELECT DISTINCT lease_owner FROM deribit_ts.tasks WHERE state = 'running' AND lease_owner LIKE %(prefix)s;

-- name: running_runs
-- The processes of the runs in progress on %(host)s.
SELECT pid FROM deribit_ts.runs WHERE status = 'running' AND host = %(host)s;

-- name: runs_interrupted
-- The runs of %(host)s's processes %(pids)s, which no longer exist.
UPDATE deribit_ts.runs SET status = 'interrupted', finished_at = now(), error = 'process died'
 WHERE status = 'running' AND host = %(host)s AND pid = ANY(%(pids)s);

-- name: open_tasks
-- Unfinished tasks a claim with the same arguments could take (now, or once their lease ends).
SELECT deribit_ts.open_tasks(%(datasets)s, %(keys)s, %(lowest)s, %(highest)s, %(within)s::tstzrange[]);

-- name: left_for_resume
-- Unfinished tasks with a priority in [%(lowest)s, %(highest)s] (the backfills', of every plan).
SELECT count(*) FROM deribit_ts.tasks
 WHERE state IN ('pending', 'running') AND priority BETWEEN %(lowest)s AND %(highest)s;
