-- The tool's own bookkeeping: the backfill plan, what has been fetched, watermarks, and the run log.

-- One row per `deribit-ts` invocation that did work.
CREATE TABLE deribit_ts.runs (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command     text NOT NULL,                    -- e.g. 'backfill candles'
    arguments   jsonb NOT NULL DEFAULT '{}',
    host        text NOT NULL DEFAULT '',
    pid         integer,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    error       text,
    -- Exchange traffic of the whole run (per-task counts are in run_tasks).
    requests    bigint NOT NULL DEFAULT 0,
    retries     bigint NOT NULL DEFAULT 0,
    throttled   bigint NOT NULL DEFAULT 0,   -- 10028 / HTTP 429 answers received
    errors      bigint NOT NULL DEFAULT 0
);

-- The backfill plan: a task is one dataset for one key (instrument or index name) over [range_start, range_end).
-- Workers claim tasks with FOR UPDATE SKIP LOCKED and hold a lease; a dead worker's lease expires and
-- another worker takes the task over. `cursor` is how far the task has durably progressed, so a killed
-- task resumes from there instead of from range_start.
CREATE TABLE deribit_ts.tasks (
    task_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset       text NOT NULL,                  -- candles | funding | index | instruments
    key           text NOT NULL,                  -- instrument_name or index_name
    range_start   timestamptz NOT NULL,
    range_end     timestamptz NOT NULL,
    priority      integer NOT NULL DEFAULT 100,   -- lower runs first
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    cursor        timestamptz,
    lease_owner   text,
    lease_expires timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (range_start < range_end),
    UNIQUE (dataset, key, range_start, range_end)
);
CREATE INDEX tasks_claim_idx ON deribit_ts.tasks (priority, task_id) WHERE state IN ('pending', 'running');

-- What was fetched: every range the exchange was asked about and answered, with how many rows it had.
-- "Never fetched" (no covering range) and "fetched, the exchange had nothing" (rows = 0) are different facts.
-- The exchange may still revise its newest data for a while (a late correction of a recent candle), so a
-- fetch is final only up to `final_until` (the exchange's clock at the fetch, less that settling time);
-- the planner fetches the unsettled tail again, and the loader counts what changed as revisions.
CREATE TABLE deribit_ts.coverage (
    dataset     text NOT NULL,
    key         text NOT NULL,
    fetched     tstzrange NOT NULL,
    rows        integer NOT NULL,
    final_until timestamptz NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    run_id      bigint REFERENCES deribit_ts.runs (run_id) ON DELETE SET NULL,
    CHECK (NOT isempty(fetched))
);
CREATE INDEX coverage_key_idx ON deribit_ts.coverage (dataset, key, lower(fetched));

-- What the user asked to have, per dataset and key. A later request widens the target.
CREATE TABLE deribit_ts.targets (
    dataset    text NOT NULL,
    key        text NOT NULL,
    wanted     tstzmultirange NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, key)
);

-- Per (dataset, key) high-water mark: the newest point fetched so far (the collector continues from
-- there; gaps before it, if any, are listed by deribit.coverage).
CREATE TABLE deribit_ts.watermarks (
    dataset       text NOT NULL,
    key           text NOT NULL,
    covered_until timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, key)
);

-- Per run and task: what it did.
CREATE TABLE deribit_ts.run_tasks (
    run_id       bigint NOT NULL REFERENCES deribit_ts.runs (run_id) ON DELETE CASCADE,
    task_id      bigint NOT NULL REFERENCES deribit_ts.tasks (task_id) ON DELETE CASCADE,
    rows_fetched bigint NOT NULL DEFAULT 0,
    inserted     bigint NOT NULL DEFAULT 0,
    revised      bigint NOT NULL DEFAULT 0,
    requests     integer NOT NULL DEFAULT 0,
    retries      integer NOT NULL DEFAULT 0,
    errors       integer NOT NULL DEFAULT 0,
    duration     interval NOT NULL DEFAULT '0',
    error        text,
    PRIMARY KEY (run_id, task_id)
);
