-- The 24/7 collector's bookkeeping: who runs, who leads, how each of its jobs fares, where it started.
--
-- Leadership itself is a PostgreSQL session advisory lock held on the leader's own connection (no home-made
-- protocol): these tables only report it. Every `deribit-ts collect` process, leader or standby, upserts its row
-- here at least every 30 s (its heartbeat); `deribit-ts status` and deribit_ts.collector_freshness() read them.

CREATE TABLE deribit_ts.collector_processes (
    process_id   text PRIMARY KEY,                -- host/pid/start time: unique per process
    host         text NOT NULL,
    pid          integer NOT NULL,
    backend_pid  integer,                         -- pg_backend_pid() of its lock connection
    role         text NOT NULL CHECK (role IN ('leader', 'standby', 'stopped')),
    state        text NOT NULL DEFAULT '',        -- what it is doing, one line (e.g. 'collecting', 'exchange unavailable: ...')
    started_at   timestamptz NOT NULL DEFAULT now(),
    leader_since timestamptz,
    beat_at      timestamptz NOT NULL DEFAULT now(),   -- the database's clock at the last heartbeat
    exchange_now timestamptz,                     -- the exchange's clock at that heartbeat (a simulator may run faster)
    run_id       bigint REFERENCES deribit_ts.runs (run_id) ON DELETE SET NULL,
    settings     jsonb NOT NULL DEFAULT '{}',     -- currencies, kinds, datasets and intervals it collects
    last_error   text,
    last_error_at timestamptz
);
COMMENT ON TABLE deribit_ts.collector_processes IS
    'One row per deribit-ts collect process: role (leader/standby), heartbeat, state, last error';

-- Per job (catalogue, candles, index, funding, ...): when it last ran and succeeded, in both clocks, and how
-- often it failed. Kept across processes, so a takeover continues the counts.
CREATE TABLE deribit_ts.collector_jobs (
    job               text PRIMARY KEY,
    runs              bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    last_run_at       timestamptz,
    last_ok_at        timestamptz,
    last_ok_exchange  timestamptz,                -- the exchange's clock at the last success
    last_error        text,
    last_error_at     timestamptz
);
COMMENT ON TABLE deribit_ts.collector_jobs IS 'Per collector job: runs, errors, last success (database and exchange clock)';

-- Where collecting started: datasets without any watermark are collected from here (an empty database starts
-- from the first start's "now", or from --since), instruments listed later from their creation.
CREATE TABLE deribit_ts.collector_origin (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    origin     timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
