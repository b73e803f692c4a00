-- Bounded bookkeeping. The collector plans a task per key every minute, records a coverage range per window and a
-- process row per start: without this, deribit_ts.tasks alone grows by about 9,400 rows a day and the coverage view
-- and the planner read every record of a key ever written. deribit_ts.compact_bookkeeping, run by the collector's
-- `bookkeeping` job every hour (and callable by anyone, e.g. after a large backfill), keeps it bounded:
--   * done tasks not touched for p_keep (a day) are deleted, their run details (run_tasks) first added to
--     run_dataset_totals: deribit_ts.run_datasets adds both, so a run's summary stays what it was;
--   * coverage records of one key that are settled and rolled up, and that touch end to end, are merged into one
--     (the rows they hold are added; their first and last row, filler minutes and `empty` minutes combined);
--   * collector_processes rows whose heartbeat is older than p_keep (a process gone for a day) are deleted.
-- Failed and waiting tasks, runs (the run log) and targets are never deleted.

-- Merge the settled, rolled-up coverage records of (dataset, key) that touch end to end. Serialized with
-- record_coverage per key. Returns the number of records removed.
-- A live collector's records of one key alternate between windows with rows and windows without: the sliver of a
-- minute after a window that ended at the exchange's time (mid-minute), an option's windows of fillers only, an
-- outage. Candles and funding merge across them all: their records keep the minutes (hours) the exchange had
-- nothing for in `empty`, which the merged record unites, so nothing is lost. Trades too: a span without a trade
-- is no gap (trades are events; holes are jumps in trade_seq), and the collector's scans record a span a minute
-- for every option, most of them without a trade. The other series keep no such
-- column: a record of theirs without rows stays apart when it spans a whole minute (the exchange had nothing
-- there), and merges when it does not (a sliver says nothing). Without this a key gained a record or two every time
-- a window ended mid-minute or an option traded, for as long as it was collected.
-- The merged record's derived columns are combined from the records' (not derived again from the table, which
-- would read a key's whole history every hour once its records have merged into one).
CREATE OR REPLACE FUNCTION deribit_ts.merge_coverage(p_dataset text, p_key text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    island record;
    removed integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.coverage'), hashtext(p_dataset || '/' || p_key));
    FOR island IN
        WITH mergeable AS (
            SELECT c.*,
                   c.rows = 0 AND c.dataset NOT IN ('candles', 'funding', 'trades')
                   AND date_trunc('minute', upper(c.fetched) - interval '1 microsecond') >= lower(c.fetched)
                       AS nothing
              FROM deribit_ts.coverage c
             WHERE c.dataset = p_dataset AND c.key = p_key AND upper(c.fetched) <= c.final_until
               AND (c.rolled_up_at IS NOT NULL OR c.rows = 0 OR c.dataset <> 'candles')
        ), starts AS (
            SELECT m.*,
                   CASE WHEN lower(m.fetched) = lag(upper(m.fetched)) OVER w AND m.nothing = lag(m.nothing) OVER w
                        THEN 0 ELSE 1 END AS starts
              FROM mergeable m
            WINDOW w AS (ORDER BY lower(m.fetched))
        ), numbered AS (
            SELECT s.*, sum(s.starts) OVER (ORDER BY lower(s.fetched)) AS island FROM starts s
        )
        SELECT array_agg(n.coverage_id) AS ids, range_merge(range_agg(n.fetched)) AS fetched, sum(n.rows) AS rows,
               max(n.final_until) AS final_until, max(n.fetched_at) AS fetched_at,
               (array_agg(n.run_id ORDER BY n.fetched_at DESC))[1] AS run_id, max(n.rolled_up_at) AS rolled_up_at,
               nullif(coalesce(range_agg(n.filled) FILTER (WHERE n.filled IS NOT NULL), '{}'), '{}') AS filled,
               sum(n.filled_minutes) AS filled_minutes, min(n.first_row) AS first_row, max(n.last_row) AS last_row,
               nullif(coalesce(range_agg(n.empty) FILTER (WHERE n.empty IS NOT NULL), '{}'), '{}') AS empty
          FROM numbered n
         GROUP BY n.island
        HAVING count(*) > 1
    LOOP
        DELETE FROM deribit_ts.coverage WHERE coverage_id = ANY (island.ids);
        -- (read by deribit_ts.coverage_derive: keep the columns given here)
        PERFORM set_config('deribit_ts.coverage_merging', 'on', true);
        INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, fetched_at, run_id, rolled_up_at,
                                         filled, filled_minutes, first_row, last_row, empty)
        VALUES (p_dataset, p_key, island.fetched, island.rows, island.final_until, island.fetched_at, island.run_id,
                island.rolled_up_at, island.filled, island.filled_minutes, island.first_row, island.last_row,
                island.empty);
        PERFORM set_config('deribit_ts.coverage_merging', 'off', true);
        removed := removed + cardinality(island.ids) - 1;
    END LOOP;
    RETURN removed;
END;
$$;

-- At most p_batch done tasks per call (the first call after an upgrade meets a year of them): the collector's next
-- hourly run takes the next batch.
DROP FUNCTION IF EXISTS deribit_ts.compact_bookkeeping(interval);
CREATE OR REPLACE FUNCTION deribit_ts.compact_bookkeeping(
    p_keep interval DEFAULT interval '1 day', p_batch integer DEFAULT 200000)
RETURNS TABLE (tasks_deleted bigint, coverage_merged bigint, processes_deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
    old_tasks bigint[];
    k record;
BEGIN
    SELECT coalesce(array_agg(task_id), '{}') INTO old_tasks
      FROM (SELECT task_id FROM deribit_ts.tasks WHERE state = 'done' AND updated_at < now() - p_keep
             ORDER BY updated_at LIMIT p_batch) old;
    INSERT INTO deribit_ts.run_dataset_totals AS r (run_id, dataset, tasks, failed_tasks, rows_fetched, inserted,
                                                     revised, requests, retries, errors, task_time)
    SELECT d.run_id, t.dataset, count(*), count(*) FILTER (WHERE d.error IS NOT NULL), sum(d.rows_fetched),
           sum(d.inserted), sum(d.revised), sum(d.requests), sum(d.retries), sum(d.errors), sum(d.duration)
      FROM deribit_ts.run_tasks d JOIN deribit_ts.tasks t USING (task_id)
     WHERE d.task_id = ANY (old_tasks)
     GROUP BY d.run_id, t.dataset
    ON CONFLICT (run_id, dataset) DO UPDATE
        SET tasks = r.tasks + EXCLUDED.tasks, failed_tasks = r.failed_tasks + EXCLUDED.failed_tasks,
            rows_fetched = r.rows_fetched + EXCLUDED.rows_fetched, inserted = r.inserted + EXCLUDED.inserted,
            revised = r.revised + EXCLUDED.revised, requests = r.requests + EXCLUDED.requests,
            retries = r.retries + EXCLUDED.retries, errors = r.errors + EXCLUDED.errors,
            task_time = r.task_time + EXCLUDED.task_time;
    DELETE FROM deribit_ts.run_tasks WHERE task_id = ANY (old_tasks);
    DELETE FROM deribit_ts.tasks WHERE task_id = ANY (old_tasks);
    tasks_deleted := cardinality(old_tasks);

    coverage_merged := 0;
    FOR k IN SELECT c.dataset, c.key FROM deribit_ts.coverage c
              WHERE upper(c.fetched) <= c.final_until
              GROUP BY c.dataset, c.key HAVING count(*) > 1
    LOOP
        coverage_merged := coverage_merged + deribit_ts.merge_coverage(k.dataset, k.key);
    END LOOP;

    DELETE FROM deribit_ts.collector_processes p
     WHERE p.beat_at < now() - p_keep
       AND NOT EXISTS (SELECT 1 FROM deribit_ts.collector_status s WHERE s.process_id = p.process_id AND s.holds_lock);
    GET DIAGNOSTICS processes_deleted = ROW_COUNT;
    RETURN NEXT;
END;
$$;
