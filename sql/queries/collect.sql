-- Queries of the collector (deribit_ts/collect/*.py).

-- name: retry_failed
-- Failed collector tasks of %(dataset)s are tried again by the next plan.
UPDATE deribit_ts.tasks SET state = 'pending', attempts = 0, updated_at = now()
 WHERE dataset = %(dataset)s AND state = 'failed' AND priority < 0;

-- name: candle_wants
-- Per future and perpetual of %(currencies)s, the range of candles to fetch (deribit_ts.collector_candle_wants).
SELECT * FROM deribit_ts.collector_candle_wants(%(now)s, %(origin)s, %(full)s, %(currencies)s, %(perpetual)s,
                                                %(future)s, %(settle)s, %(keep_after_expiry)s);

-- name: option_wants
-- Per option of %(names)s that traded, the range of candles to fetch.
SELECT * FROM deribit_ts.collector_option_wants(%(now)s, %(origin)s, %(names)s, %(trail)s);

-- name: funding_wants
SELECT * FROM deribit_ts.collector_funding_wants(%(now)s, %(origin)s, %(full)s, %(currencies)s);

-- name: index_wants
SELECT * FROM deribit_ts.collector_index_wants(%(now)s, %(origin)s, %(full)s, %(indexes)s);

-- name: series_wants
-- DVOL (keyed by currency) and delivery prices (keyed by index name): %(dataset)s of %(keys)s.
SELECT * FROM deribit_ts.collector_series_wants(%(dataset)s, %(now)s, %(origin)s, %(full)s, %(keys)s, %(settle)s);

-- name: ensure_origin
-- The collector's origin: set on the first start to %(start)s; an earlier --since (%(moved)s) moves it back.
INSERT INTO deribit_ts.collector_origin AS o (origin) VALUES (%(start)s)
    ON CONFLICT (singleton) DO UPDATE
       SET origin = CASE WHEN %(moved)s THEN least(o.origin, EXCLUDED.origin) ELSE o.origin END, updated_at = now()
RETURNING origin;

-- name: job_errors
-- %(errors)s failures of %(job)s's tasks, the last with %(error)s.
INSERT INTO deribit_ts.collector_jobs AS j (job, errors, last_error, last_error_at)
VALUES (%(job)s, %(errors)s, %(error)s, now())
    ON CONFLICT (job) DO UPDATE SET errors = j.errors + EXCLUDED.errors, last_error = EXCLUDED.last_error,
                                    last_error_at = now();

-- name: job_run
-- One run of %(job)s at the exchange's %(now)s: it succeeded, or failed with %(error)s (%(failed)s).
INSERT INTO deribit_ts.collector_jobs AS j (job, runs, errors, last_run_at, last_ok_at, last_ok_exchange,
                                            last_error, last_error_at)
VALUES (%(job)s, 1, %(failed)s::boolean::int, now(), CASE WHEN NOT %(failed)s::boolean THEN now() END,
        CASE WHEN NOT %(failed)s::boolean THEN %(now)s::timestamptz END, %(error)s::text,
        CASE WHEN %(failed)s::boolean THEN now() END)
    ON CONFLICT (job) DO UPDATE SET runs = j.runs + 1, errors = j.errors + EXCLUDED.errors, last_run_at = now(),
                                    last_ok_at = coalesce(EXCLUDED.last_ok_at, j.last_ok_at),
                                    last_ok_exchange = coalesce(EXCLUDED.last_ok_exchange, j.last_ok_exchange),
                                    last_error = coalesce(EXCLUDED.last_error, j.last_error),
                                    last_error_at = coalesce(EXCLUDED.last_error_at, j.last_error_at);

-- name: freshness
-- Per dataset of %(currencies)s and %(kinds)s: keys, newest row, covered until, lag and stalest key at %(now)s.
SELECT * FROM deribit_ts.collector_freshness(%(now)s, %(currencies)s, %(kinds)s);

-- name: lags
-- The lag per dataset of %(currencies)s and %(kinds)s at %(now)s (the leader's summary line).
SELECT dataset, lag FROM deribit_ts.collector_freshness(%(now)s, %(currencies)s, %(kinds)s);

-- name: release_previous_leaders_tasks
-- Only the leader works collector tasks (negative priorities): any still running belong to a leader that died or
-- lost its lock.
UPDATE deribit_ts.tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL, updated_at = now()
 WHERE state = 'running' AND priority < 0;

-- name: open_tasks
-- Unfinished collector tasks: fresh ones (priority below %(catch_up)s) and catch-up ones.
SELECT count(*) FILTER (WHERE priority < %(catch_up)s), count(*) FILTER (WHERE priority >= %(catch_up)s)
  FROM deribit_ts.tasks WHERE state IN ('pending', 'running') AND priority < 0;

-- name: catalogue_refreshed
-- The exchange's time of the catalogue's last refresh.
SELECT last_ok_exchange FROM deribit_ts.collector_jobs WHERE job = 'catalogue';

-- name: compact_bookkeeping
-- Delete done tasks and dead processes older than %(keep)s and merge coverage records; returns the three counts.
SELECT * FROM deribit_ts.compact_bookkeeping(%(keep)s);

-- name: leader_end_stale
-- End the session of a leader whose heartbeat is older than the lease.
SELECT deribit_ts.collector_end_stale_leader();

-- name: leader_take_lease
-- A new epoch, led by %(process_id)s.
SELECT deribit_ts.collector_take_lease(%(process_id)s);

-- name: leader_try_lock
-- The leader lock (a session advisory lock on the pair %(key1)s, %(key2)s), if it is free.
SELECT pg_try_advisory_lock(%(key1)s, %(key2)s);

-- name: leader_holder_stale
-- Whether the lock's holder last beat more than %(lease_s)s seconds ago.
SELECT coalesce(bool_and(beat_at < now() - make_interval(secs => %(lease_s)s)), false)
  FROM deribit_ts.collector_status WHERE holds_lock;

-- name: leader_beat
-- The heartbeat row of process %(process_id)s: its role, state, the exchange's clock, its run and settings, the
-- last error.
INSERT INTO deribit_ts.collector_processes AS p
       (process_id, host, pid, backend_pid, role, state, leader_since, exchange_now, run_id, settings,
        last_error, last_error_at)
VALUES (%(process_id)s, %(host)s, %(pid)s, pg_backend_pid(), %(role)s::text, %(state)s,
        CASE WHEN %(role)s::text = 'leader' THEN now() END, %(exchange_now)s::timestamptz, %(run_id)s::bigint,
        %(settings)s::jsonb, %(error)s::text, CASE WHEN %(error)s::text IS NOT NULL THEN now() END)
    ON CONFLICT (process_id) DO UPDATE SET
       backend_pid = EXCLUDED.backend_pid, role = EXCLUDED.role, state = EXCLUDED.state, beat_at = now(),
       leader_since = CASE WHEN EXCLUDED.role <> 'leader' THEN NULL ELSE coalesce(p.leader_since, now()) END,
       exchange_now = coalesce(EXCLUDED.exchange_now, p.exchange_now), run_id = EXCLUDED.run_id,
       settings = EXCLUDED.settings,
       last_error = coalesce(EXCLUDED.last_error, p.last_error),
       last_error_at = coalesce(EXCLUDED.last_error_at, p.last_error_at);

-- name: leader_epoch
SELECT epoch FROM deribit_ts.collector_lease;

-- name: leader_name
-- The process that holds the lock now, as its heartbeat row names it.
SELECT process_id FROM deribit_ts.collector_status WHERE holds_lock ORDER BY beat_at DESC LIMIT 1;

-- name: status_processes
-- Every collector process, the lock's holder first.
SELECT process_id, host, pid, role, state, started_at, leader_since, beat_at, beat_age, exchange_now,
       run_id, settings, last_error, last_error_at, holds_lock
  FROM deribit_ts.collector_status
 ORDER BY holds_lock DESC, beat_at DESC;

-- name: status_reference
-- The exchange's time now as the leader (else the newest beat) last saw it, the database's now without one.
SELECT coalesce((SELECT exchange_now + (now() - beat_at) FROM deribit_ts.collector_status
                  WHERE exchange_now IS NOT NULL ORDER BY holds_lock DESC, beat_at DESC LIMIT 1), now());

-- name: status_jobs
SELECT job, errors, last_error FROM deribit_ts.collector_jobs;

-- name: trades_watermark
-- How far the %(dataset)s scans of %(currency)s have covered.
SELECT covered_until FROM deribit_ts.watermarks WHERE dataset = %(dataset)s AND key = %(currency)s;

-- name: trades_watermark_advance
INSERT INTO deribit_ts.watermarks AS w (dataset, key, covered_until) VALUES (%(dataset)s, %(currency)s, %(until)s)
    ON CONFLICT (dataset, key) DO UPDATE
       SET covered_until = greatest(w.covered_until, EXCLUDED.covered_until), updated_at = now();

-- name: trades_instruments
-- The instruments of %(currency)s of a kind alive some time in [%(start)s, %(end)s).
SELECT instrument_name FROM deribit.instruments
 WHERE base_currency = %(currency)s AND kind = %(kind)s AND is_perpetual = %(perpetual)s
   AND coalesce(creation_ts, '-infinity') < %(end)s AND (expiry IS NULL OR expiry >= %(start)s)
 ORDER BY instrument_name;

-- name: open_keys
-- Instruments with collector tasks not done that no other job names: trades tasks and option candles.
SELECT DISTINCT t.key FROM deribit_ts.tasks t
 WHERE t.priority < 0 AND t.state IN ('pending', 'running', 'failed')
   AND (t.dataset = 'trades'
        OR (t.dataset = 'candles'
            AND EXISTS (SELECT 1 FROM deribit.instruments i WHERE i.instrument_name = t.key AND i.kind = 'option')));

-- name: trades_scan_coverage
-- A scan read every trade of %(keys)s inside the ranges [%(starts)s[i], %(ends)s[i]): their trades coverage, final up
-- to %(final_until)s.
SELECT deribit_ts.record_scan_coverage(
           %(keys)s::text[],
           (SELECT coalesce(range_agg(tstzrange(p.s, p.e)), '{}')
              FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS p (s, e)),
           %(final_until)s, %(run_id)s);
