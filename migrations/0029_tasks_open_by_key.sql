-- Planning reads the unfinished tasks of one (dataset, key) (deribit_ts.plan_tasks): an index of the unfinished
-- tasks only makes that cost what the open tasks cost, however many done tasks the key has (a year of collector
-- bookkeeping before compaction: 1.1 s a plan instead of 1.5 ms).
CREATE INDEX tasks_open_key_idx ON deribit_ts.tasks (dataset, key) WHERE state IN ('pending', 'running', 'failed');
