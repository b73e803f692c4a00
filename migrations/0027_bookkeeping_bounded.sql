-- Bookkeeping that stays bounded (deribit_ts.compact_bookkeeping, sql/75_bookkeeping.sql): done tasks are deleted
-- once they are older than a day, their per-task run details folded first into per-run, per-dataset totals
-- (run_dataset_totals: deribit_ts.run_datasets adds both, so `deribit-ts runs` shows the same sums), and the
-- coverage records of one key are merged.

CREATE TABLE deribit_ts.run_dataset_totals (
    run_id       bigint NOT NULL REFERENCES deribit_ts.runs (run_id) ON DELETE CASCADE,
    dataset      text NOT NULL,
    tasks        bigint NOT NULL DEFAULT 0,
    failed_tasks bigint NOT NULL DEFAULT 0,
    rows_fetched bigint NOT NULL DEFAULT 0,
    inserted     bigint NOT NULL DEFAULT 0,
    revised      bigint NOT NULL DEFAULT 0,
    requests     bigint NOT NULL DEFAULT 0,
    retries      bigint NOT NULL DEFAULT 0,
    errors       bigint NOT NULL DEFAULT 0,
    task_time    interval NOT NULL DEFAULT '0',
    PRIMARY KEY (run_id, dataset)
);
COMMENT ON TABLE deribit_ts.run_dataset_totals IS
    'Per run and dataset: the totals of the run details (run_tasks) of tasks deleted once done and old';

-- Finding the old done tasks without reading the waiting ones.
CREATE INDEX tasks_done_idx ON deribit_ts.tasks (updated_at) WHERE state = 'done';
-- Finding the dead collector processes.
CREATE INDEX collector_processes_beat_idx ON deribit_ts.collector_processes (beat_at);
