-- The collector's leader lease and its fencing.
--
-- Leadership is still the session advisory lock of the leader's lock connection (released by the server the
-- moment that session ends). A leader whose process is frozen (SIGSTOP, a stuck disk, a stalled event loop) keeps
-- its session, and so the lock, forever: a standby now also reads the leader's heartbeat
-- (deribit_ts.collector_processes.beat_at, the database's clock) and, once it is older than the lease
-- (DERIBIT_TS_LEADER_LEASE_S, 30 s by default), terminates the frozen leader's lock session and takes the lock.
-- Every takeover increments the epoch below. Each connection a leader opens carries its epoch (the setting
-- deribit_ts.leader_epoch), and every statement it runs on the collector's tables checks, in the same transaction,
-- that the epoch is still the current one, holding a share lock on this row until it commits: a leader that
-- resumes after losing its lease can commit nothing, and a takeover waits for (or terminates) the transactions of
-- the previous epoch before it begins.
CREATE TABLE deribit_ts.collector_lease (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch       bigint NOT NULL DEFAULT 0,        -- incremented by every takeover
    holder      text,                             -- process_id of the leader of this epoch
    backend_pid integer,                          -- pg_backend_pid() of its lock connection
    taken_at    timestamptz                       -- when this epoch began (the database's clock)
);
INSERT INTO deribit_ts.collector_lease DEFAULT VALUES;
COMMENT ON TABLE deribit_ts.collector_lease IS
    'The collector''s leadership epoch: which process leads and since when; incremented by every takeover';

-- A statement trigger: a connection that carries a leader epoch may write only while that epoch is current.
-- Connections without one (backfill runs, status, migrations, a person at psql) are not affected.
CREATE FUNCTION deribit_ts.check_leader_epoch()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    mine text := current_setting('deribit_ts.leader_epoch', true);
BEGIN
    IF coalesce(mine, '') = '' THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM deribit_ts.collector_lease WHERE epoch = mine::bigint FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this collector no longer leads: its leadership (epoch %) was taken over', mine
            USING ERRCODE = 'DT001';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.tasks
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.coverage
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.watermarks
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.targets
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.collector_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.collector_origin
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.snapshot_rounds
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit.instruments
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
