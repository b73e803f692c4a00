-- Deleting a done task (deribit_ts.compact_bookkeeping) deletes its run details by task_id: without an index on
-- it, every deleted task scanned the whole of deribit_ts.run_tasks (a year of collector bookkeeping: hours).
CREATE INDEX run_tasks_task_idx ON deribit_ts.run_tasks (task_id);
