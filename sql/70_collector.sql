-- The 24/7 collector (deribit-ts collect) in SQL: what to fetch next, which tasks it claims, who leads, and how
-- fresh every dataset is. Python schedules and calls these; the range arithmetic stays here.
--
-- Leadership: the leader holds the session advisory lock (1685222515, 1) ("drts", 1) on its own connection;
-- deribit_ts.collector_status reads pg_locks to say which process holds it.

-- Candles the collector wants now, per instrument: from its watermark (less the settling time, so the newest
-- candles are fetched again until final) or, for an instrument never collected, from its listing or the
-- collector's origin, whichever is later; up to the last closed minute or the expiry. p_full also plans from
-- the origin (a check for holes behind the watermark). Instruments expired longer ago than p_keep_after_expiry
-- are retired: no longer planned.
CREATE OR REPLACE FUNCTION deribit_ts.collector_candle_wants(
    p_now timestamptz, p_origin timestamptz, p_full boolean, p_currencies text[],
    p_perpetual boolean, p_future boolean, p_settle interval, p_keep_after_expiry interval)
RETURNS TABLE (instrument_name text, want_from timestamptz, want_until timestamptz, is_perpetual boolean)
LANGUAGE sql STABLE AS $$
    SELECT i.instrument_name,
           CASE WHEN p_full OR w.covered_until IS NULL
                THEN least(w.covered_until,
                           greatest(date_trunc('minute', coalesce(i.creation_ts, p_origin)),
                                    date_trunc('minute', p_origin)))
                -- never before the origin (or an older watermark): the tail is fetched again, not the past
                ELSE greatest(least(w.covered_until, date_trunc('minute', p_now)) - p_settle,
                              date_trunc('minute', coalesce(i.creation_ts, p_origin)),
                              least(date_trunc('minute', p_origin), w.covered_until))
           END AS want_from,
           least(coalesce(i.expiry, 'infinity'), date_trunc('minute', p_now)) AS want_until,
           i.is_perpetual
      FROM deribit.instruments i
      LEFT JOIN deribit_ts.watermarks w ON w.dataset = 'candles' AND w.key = i.instrument_name
     WHERE i.base_currency = ANY (p_currencies)
       AND i.kind = 'future'
       AND ((p_perpetual AND i.is_perpetual) OR (p_future AND NOT i.is_perpetual))
       AND coalesce(i.creation_ts, '-infinity') <= p_now
       AND (i.expiry IS NULL OR i.expiry > p_now - p_keep_after_expiry)
     ORDER BY i.is_perpetual DESC, i.expiry, i.instrument_name
$$;

-- Candles of the options that traded (collect/options.py finds them): the same range rule as the futures above,
-- for the named options only.
CREATE OR REPLACE FUNCTION deribit_ts.collector_option_wants(
    p_now timestamptz, p_origin timestamptz, p_names text[], p_settle interval)
RETURNS TABLE (instrument_name text, want_from timestamptz, want_until timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT i.instrument_name,
           CASE WHEN w.covered_until IS NULL
                THEN greatest(date_trunc('minute', coalesce(i.creation_ts, p_origin)), date_trunc('minute', p_origin))
                ELSE greatest(least(w.covered_until, date_trunc('minute', p_now)) - p_settle,
                              date_trunc('minute', coalesce(i.creation_ts, p_origin)),
                              least(date_trunc('minute', p_origin), w.covered_until))
           END,
           least(coalesce(i.expiry, 'infinity'), date_trunc('minute', p_now))
      FROM deribit.instruments i
      LEFT JOIN deribit_ts.watermarks w ON w.dataset = 'candles' AND w.key = i.instrument_name
     WHERE i.instrument_name = ANY (p_names) AND i.kind = 'option'
     ORDER BY i.expiry, i.instrument_name
$$;

-- Hourly funding of the perpetuals: from the hour before the watermark (the row of the current hour may be
-- fetched before it exists) or from the origin's hour, up to the next whole hour (exclusive).
CREATE OR REPLACE FUNCTION deribit_ts.collector_funding_wants(
    p_now timestamptz, p_origin timestamptz, p_full boolean, p_currencies text[])
RETURNS TABLE (instrument_name text, want_from timestamptz, want_until timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT i.instrument_name,
           CASE WHEN p_full OR w.covered_until IS NULL
                THEN least(w.covered_until,
                           greatest(date_trunc('hour', coalesce(i.creation_ts, p_origin)), date_trunc('hour', p_origin)))
                ELSE greatest(least(w.covered_until, date_trunc('hour', p_now)) - interval '1 hour',
                              least(date_trunc('hour', p_origin), w.covered_until))
           END AS want_from,
           date_trunc('hour', p_now) + interval '1 hour' AS want_until
      FROM deribit.instruments i
      LEFT JOIN deribit_ts.watermarks w ON w.dataset = 'funding' AND w.key = i.instrument_name
     WHERE i.base_currency = ANY (p_currencies) AND i.kind = 'future' AND i.is_perpetual
       AND coalesce(i.creation_ts, '-infinity') <= p_now
     ORDER BY i.instrument_name
$$;

-- Index prices: from the watermark (or the origin) to the last closed minute.
CREATE OR REPLACE FUNCTION deribit_ts.collector_index_wants(
    p_now timestamptz, p_origin timestamptz, p_full boolean, p_indexes text[])
RETURNS TABLE (index_name text, want_from timestamptz, want_until timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT n.name,
           CASE WHEN p_full OR w.covered_until IS NULL
                THEN least(w.covered_until, date_trunc('minute', p_origin))
                ELSE least(w.covered_until, date_trunc('minute', p_now))
           END,
           date_trunc('minute', p_now)
      FROM unnest(p_indexes) AS n(name)
      LEFT JOIN deribit_ts.watermarks w ON w.dataset = 'index' AND w.key = n.name
     ORDER BY n.name
$$;

-- Series keyed by currency or index name (DVOL, delivery prices): from the watermark (less the settling time) or
-- the origin, to the last closed minute.
CREATE OR REPLACE FUNCTION deribit_ts.collector_series_wants(
    p_dataset text, p_now timestamptz, p_origin timestamptz, p_full boolean, p_keys text[], p_settle interval)
RETURNS TABLE (key text, want_from timestamptz, want_until timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT k.key,
           CASE WHEN p_full OR w.covered_until IS NULL
                THEN least(w.covered_until, date_trunc('minute', p_origin))
                ELSE greatest(least(w.covered_until, date_trunc('minute', p_now)) - p_settle,
                              least(date_trunc('minute', p_origin), w.covered_until))
           END,
           date_trunc('minute', p_now)
      FROM unnest(p_keys) AS k(key)
      LEFT JOIN deribit_ts.watermarks w ON w.dataset = p_dataset AND w.key = k.key
     ORDER BY k.key
$$;

-- A trade scan of the collector (collect/trades.py) read every trade of p_keys (instruments of one currency and
-- kind) inside p_fetched: the scan's span less any millisecond it handed to the by-instrument route. Each key's
-- share, clipped to the instrument's life, is recorded as its trades coverage, like a backfill window: it joins the
-- key's target (what `deribit-ts coverage` measures against) and record_coverage cuts the key's older records back
-- where the scan read again, counting its rows on the table; final up to p_final_until (what the next scan does
-- not read again). The key's settled records that touch end to end are merged at once: a scan a minute would
-- otherwise add a record per instrument a minute until the hourly bookkeeping. Returns the records written.
CREATE OR REPLACE FUNCTION deribit_ts.record_scan_coverage(
    p_keys text[], p_fetched tstzmultirange, p_final_until timestamptz, p_run_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    life tstzmultirange;
    piece tstzrange;
    written integer := 0;
BEGIN
    FOREACH k IN ARRAY p_keys LOOP
        SELECT tstzmultirange(tstzrange(i.creation_ts, i.expiry)) INTO life
          FROM deribit.instruments i WHERE i.instrument_name = k;
        FOR piece IN SELECT unnest(p_fetched * coalesce(life, '{(,)}')) LOOP
            INSERT INTO deribit_ts.targets AS t (dataset, key, wanted)
            VALUES ('trades', k, tstzmultirange(piece))
            ON CONFLICT (dataset, key) DO UPDATE SET wanted = t.wanted + EXCLUDED.wanted, updated_at = now()
                WHERE NOT t.wanted @> piece;
            PERFORM deribit_ts.record_coverage('trades', k, piece, deribit_ts.stored_rows('trades', k, piece)::integer,
                                               least(upper(piece), p_final_until), p_run_id);
            written := written + 1;
        END LOOP;
        PERFORM deribit_ts.merge_coverage('trades', k);
    END LOOP;
    RETURN written;
END;
$$;

-- The collector claims its tasks with deribit_ts.claim_task (sql/20_backfill.sql) and a priority range.
DROP FUNCTION IF EXISTS deribit_ts.collector_claim_task(text, interval, text[], text[], integer);

-- Every collect process with its heartbeat, and whether it holds the leader lock right now.
CREATE OR REPLACE VIEW deribit_ts.collector_status AS
SELECT p.process_id, p.host, p.pid, p.role, p.state, p.started_at, p.leader_since, p.beat_at,
       now() - p.beat_at AS beat_age, p.exchange_now, p.run_id, p.settings, p.last_error, p.last_error_at,
       EXISTS (SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted AND l.pid = p.backend_pid
                  AND l.classid = 1685222515::oid AND l.objid = 1::oid AND l.objsubid = 2
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS holds_lock
  FROM deribit_ts.collector_processes p;
COMMENT ON VIEW deribit_ts.collector_status IS
    'deribit-ts collect processes: role, heartbeat and its age, state, last error, whether it holds the leader lock';

-- How fresh each dataset the collector keeps is, as of p_now (the exchange's clock): per dataset the number of
-- live keys, the newest and the stalest point covered (a key never covered makes it NULL) and the lag of the
-- stalest. Watermark datasets: candles of live perpetuals and futures, funding, index. Job datasets (the
-- catalogue and the others a job refreshes as a whole): the exchange's clock at the job's last success.
CREATE OR REPLACE FUNCTION deribit_ts.collector_freshness(p_now timestamptz, p_currencies text[], p_kinds text[])
RETURNS TABLE (dataset text, keys integer, newest timestamptz, covered_until timestamptz, lag interval,
               stalest_key text)
LANGUAGE sql STABLE AS $$
    WITH live AS (
        SELECT CASE WHEN i.is_perpetual THEN 'candles.perpetual' ELSE 'candles.future' END AS dataset,
               'candles' AS source, i.instrument_name AS key
          FROM deribit.instruments i
         WHERE i.kind = 'future' AND i.base_currency = ANY (p_currencies)
           AND ((i.is_perpetual AND 'perpetual' = ANY (p_kinds)) OR (NOT i.is_perpetual AND 'future' = ANY (p_kinds)))
           AND coalesce(i.creation_ts, '-infinity') <= p_now - interval '5 minutes'  -- a new listing's first cycle
           AND (i.expiry IS NULL OR i.expiry > p_now)
        UNION ALL
        SELECT 'funding', 'funding', i.instrument_name
          FROM deribit.instruments i
         WHERE i.kind = 'future' AND i.is_perpetual AND i.base_currency = ANY (p_currencies)
           AND 'perpetual' = ANY (p_kinds)
        UNION ALL
        SELECT 'index', 'index', lower(c) || '_usd' FROM unnest(p_currencies) AS c
        UNION ALL
        SELECT 'dvol', 'dvol', c FROM unnest(p_currencies) AS c
        UNION ALL
        SELECT 'delivery', 'delivery', lower(c) || '_usd' FROM unnest(p_currencies) AS c
        UNION ALL  -- options: how far the scan for traded options has come (their candles follow within a cycle)
        SELECT 'candles.option', 'option_trades', c FROM unnest(p_currencies) AS c WHERE 'option' = ANY (p_kinds)
        UNION ALL  -- the trade tape of each kind collected: how far its scans have stored it
        SELECT 'trades.' || k, k || '_trades', c FROM unnest(p_currencies) AS c, unnest(p_kinds) AS k
    ), marks AS (
        -- A trade tape is complete up to its watermark, except where the collector left a gap to trades tasks
        -- (beyond the by-currency route's reach): until they are done it is complete up to the oldest of them.
        SELECT l.dataset, l.key,
               CASE WHEN l.dataset LIKE 'trades.%' AND w.covered_until IS NOT NULL THEN least(w.covered_until, (
                   SELECT min(coalesce(t.cursor, t.range_start))
                     FROM deribit_ts.tasks t
                     JOIN deribit.instruments i ON i.instrument_name = t.key
                    WHERE t.dataset = 'trades' AND t.priority < 0 AND t.state IN ('pending', 'running', 'failed')
                      AND i.base_currency = l.key
                      AND CASE WHEN i.kind = 'option' THEN 'option' WHEN i.is_perpetual THEN 'perpetual'
                               ELSE 'future' END = substr(l.dataset, 8)))
                    ELSE w.covered_until END AS covered_until
          FROM live l
          LEFT JOIN deribit_ts.watermarks w ON w.dataset = l.source AND w.key = l.key
    ), by_watermark AS (
        SELECT m.dataset, count(*)::integer AS keys, max(m.covered_until) AS newest,
               CASE WHEN bool_or(m.covered_until IS NULL) THEN NULL ELSE min(m.covered_until) END AS covered_until,
               (array_agg(m.key ORDER BY m.covered_until NULLS FIRST, m.key))[1] AS stalest_key
          FROM marks m
         GROUP BY m.dataset
    )
    SELECT b.dataset, b.keys, b.newest, b.covered_until,
           CASE WHEN b.covered_until IS NOT NULL THEN greatest(p_now - b.covered_until, interval '0') END, b.stalest_key
      FROM by_watermark b
    UNION ALL
    SELECT CASE j.job WHEN 'catalogue' THEN 'instruments' ELSE j.job END, 1, j.last_ok_exchange,
           j.last_ok_exchange,
           CASE WHEN j.last_ok_exchange IS NOT NULL THEN greatest(p_now - j.last_ok_exchange, interval '0') END, NULL
      FROM deribit_ts.collector_jobs j
     WHERE j.job NOT IN ('candles', 'candles.full', 'funding', 'index', 'dvol', 'delivery', 'options', 'rollups',
                         'bookkeeping', 'trades')
     ORDER BY 1
$$;

-- Leadership takeover (deribit_ts/collect/leader.py). A standby that finds the lock holder's heartbeat older than
-- the lease ends the holder's lock session, so the lock is free for the standby's next try.
CREATE OR REPLACE FUNCTION deribit_ts.collector_end_stale_leader()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    holder integer;
    ended integer := 0;
BEGIN
    FOR holder IN SELECT l.pid FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
                     AND l.classid = 1685222515::oid AND l.objid = 1::oid AND l.objsubid = 2
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LOOP
        IF pg_terminate_backend(holder) THEN
            ended := ended + 1;
        END IF;
    END LOOP;
    RETURN ended;
END;
$$;

-- Begin a new leadership epoch for p_holder (the caller holds the leader lock). Transactions of the previous epoch
-- that are still open (a frozen leader's: they hold a share lock on the lease row) would hold the takeover up, so
-- they are ended first; whatever they had not committed is lost to them, as fencing requires.
CREATE OR REPLACE FUNCTION deribit_ts.collector_take_lease(p_holder text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    taken bigint;
BEGIN
    PERFORM set_config('lock_timeout', '2s', true);
    -- A frozen leader may also sit inside a transaction that holds row locks but not yet the lease (rows of a data
    -- table written before the transaction's fenced bookkeeping): the new leader's writes of the same rows would
    -- wait for it for good. Every open transaction of the previous holder's process is ended, and waited for (up
    -- to 5 s each); its sessions are named after it (deribit_ts/collect/leader.py, application_name()).
    PERFORM pg_terminate_backend(a.pid, 5000)
       FROM pg_stat_activity a, deribit_ts.collector_lease l
      WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
        AND l.holder IS DISTINCT FROM p_holder
        AND a.application_name = left('deribit-ts collect ' || l.holder, 63);
    FOR attempt IN 1..5 LOOP
        PERFORM pg_terminate_backend(l.pid)
           FROM pg_locks l
          WHERE l.relation = 'deribit_ts.collector_lease'::regclass AND l.mode = 'RowShareLock' AND l.granted
            AND l.pid <> pg_backend_pid();
        BEGIN
            UPDATE deribit_ts.collector_lease
               SET epoch = epoch + 1, holder = p_holder, backend_pid = pg_backend_pid(), taken_at = now()
            RETURNING epoch INTO taken;
            RETURN taken;
        EXCEPTION WHEN lock_not_available THEN
            NULL;  -- a previous epoch's transaction began meanwhile: end it too
        END;
    END LOOP;
    RAISE EXCEPTION 'could not begin a leadership epoch: transactions of the previous one keep the lease locked'
        USING ERRCODE = 'lock_not_available';
END;
$$;
