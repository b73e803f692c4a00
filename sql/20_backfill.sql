-- The backfill plan and coverage, in SQL: what was asked for (targets), what was fetched (coverage),
-- what remains (tasks). Python only asks these functions and writes rows; the range arithmetic lives
-- here, on multiranges.

-- Plan the fetches of `p_want` for one (dataset, key): everything in it that is neither fetched yet
-- (coverage) nor already planned (an unfinished task), cut into tasks of at most `p_chunk`.
-- Failed tasks in the range are retried. Returns the number of new tasks.
-- Urgency tiers of an instrument's candles: the data most at risk first. An expired instrument soon
-- drops out of what the exchange lists; one expiring within a week is about to.
CREATE OR REPLACE FUNCTION deribit_ts.option_tier(p_expiry timestamptz, p_now timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_expiry IS NULL THEN NULL
                WHEN p_expiry < p_now + interval '7 days' THEN 'critical'
                WHEN p_expiry < p_now + interval '30 days' THEN 'high'
                WHEN p_expiry < p_now + interval '90 days' THEN 'medium'
                ELSE 'low' END;
$$;

-- The priority of an instrument's candle tasks (lower runs first; funding 1 and index 2 go before any candles).
-- Critical (expired, or expiring within 7 days) is one priority, ordered inside by the tasks' `due` (expiry);
-- then one priority per day to expiry, so the high, medium and low tiers follow in order; perpetuals last.
CREATE OR REPLACE FUNCTION deribit_ts.candle_priority(p_perpetual boolean, p_expiry timestamptz, p_now timestamptz)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_perpetual OR p_expiry IS NULL THEN 100000
                WHEN deribit_ts.option_tier(p_expiry, p_now) = 'critical' THEN 10
                ELSE 100 + (extract(epoch FROM p_expiry - p_now)::bigint / 86400)::integer END;
$$;

DROP FUNCTION IF EXISTS deribit_ts.plan_tasks(text, text, tstzrange, interval, integer);
CREATE OR REPLACE FUNCTION deribit_ts.plan_tasks(
    p_dataset text, p_key text, p_want tstzrange, p_chunk interval, p_priority integer, p_due timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    created integer;
    bound timestamptz;
    straddling deribit_ts.tasks;
BEGIN
    IF isempty(p_want) THEN
        RETURN 0;
    END IF;
    -- Planning is serialized per (dataset, key), so concurrent planners never cut overlapping tasks.
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.plan'), hashtext(p_dataset || '/' || p_key));

    INSERT INTO deribit_ts.targets AS t (dataset, key, wanted)
    VALUES (p_dataset, p_key, tstzmultirange(p_want))
    ON CONFLICT (dataset, key) DO UPDATE SET wanted = t.wanted + EXCLUDED.wanted, updated_at = now();

    -- The collector's tasks (negative priorities) and the backfill's (positive) are two plans over the same keys:
    -- each planner retries and re-prioritizes only its own side's tasks.
    UPDATE deribit_ts.tasks
       SET state = 'pending', attempts = 0, last_error = NULL, updated_at = now()
     WHERE dataset = p_dataset AND key = p_key AND state = 'failed' AND sign(priority) = sign(p_priority)
       AND tstzrange(range_start, range_end) && p_want;

    -- Urgency changes with time (an option moves to a more urgent tier as it nears expiry): the newest plan's
    -- priority holds for every task of the key still waiting.
    UPDATE deribit_ts.tasks
       SET priority = p_priority, due = p_due, updated_at = now()
     WHERE dataset = p_dataset AND key = p_key AND state = 'pending' AND sign(priority) = sign(p_priority)
       AND (priority, due) IS DISTINCT FROM (p_priority, p_due);

    -- A waiting task that straddles an end of the want is cut there, so that a bounded command works exactly the
    -- tasks inside what it asked for (claim_task's p_within) and leaves the rest of an earlier plan waiting.
    FOREACH bound IN ARRAY ARRAY[lower(p_want), upper(p_want)] LOOP
        CONTINUE WHEN bound IS NULL;
        FOR straddling IN SELECT * FROM deribit_ts.tasks
                           WHERE dataset = p_dataset AND key = p_key AND state = 'pending'
                             AND coalesce(cursor, range_start) < bound AND bound < range_end
                           FOR UPDATE
        LOOP
            BEGIN
                UPDATE deribit_ts.tasks SET range_end = bound, updated_at = now()
                 WHERE task_id = straddling.task_id;
                INSERT INTO deribit_ts.tasks (dataset, key, range_start, range_end, priority, due)
                VALUES (p_dataset, p_key, bound, straddling.range_end, straddling.priority, straddling.due)
                ON CONFLICT (dataset, key, range_start, range_end) DO UPDATE
                    SET state = 'pending', cursor = NULL, attempts = 0, updated_at = now()
                    WHERE deribit_ts.tasks.state IN ('done', 'failed');
            EXCEPTION WHEN unique_violation THEN
                NULL;  -- an old task holds the first piece's bounds: the task stays whole (worked by whoever claims it)
            END;
        END LOOP;
    END LOOP;

    WITH fetched AS (
        SELECT coalesce(range_agg(tstzrange(lower(fetched),
                                            greatest(lower(fetched), least(upper(fetched), final_until)))),
                        '{}'::tstzmultirange) AS done
          FROM deribit_ts.coverage
         WHERE dataset = p_dataset AND key = p_key AND fetched && p_want
    ), planned AS (
        SELECT coalesce(range_agg(tstzrange(coalesce(cursor, range_start), range_end)), '{}'::tstzmultirange) AS todo
          FROM deribit_ts.tasks
         WHERE dataset = p_dataset AND key = p_key AND state IN ('pending', 'running')
           AND coalesce(cursor, range_start) < range_end
    ), gaps AS (
        SELECT unnest(tstzmultirange(p_want) - fetched.done - planned.todo) AS gap FROM fetched, planned
    ), pieces AS (
        SELECT piece_start, least(piece_start + p_chunk, upper(gap)) AS piece_end
          FROM gaps, generate_series(lower(gap), upper(gap) - interval '1 microsecond', p_chunk) AS piece_start
    )
    INSERT INTO deribit_ts.tasks (dataset, key, range_start, range_end, priority, due)
    SELECT p_dataset, p_key, piece_start, piece_end, p_priority, p_due FROM pieces
    ON CONFLICT (dataset, key, range_start, range_end) DO UPDATE
        SET state = 'pending', cursor = NULL, attempts = 0, priority = EXCLUDED.priority, due = EXCLUDED.due,
            updated_at = now()
        WHERE deribit_ts.tasks.state IN ('done', 'failed');
    GET DIAGNOSTICS created = ROW_COUNT;
    RETURN created;
END;
$$;

-- Whether what is left of a task (from its cursor) lies inside `p_within` (a command's bounds for its dataset).
CREATE OR REPLACE FUNCTION deribit_ts.task_within(
    p_cursor timestamptz, p_start timestamptz, p_end timestamptz, p_within tstzrange, p_anywhere boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_anywhere OR coalesce(tstzrange(coalesce(p_cursor, p_start), p_end) <@ p_within, false);
$$;

-- Unfinished tasks a claim with the same arguments could take (now, or once their lease ends).
CREATE OR REPLACE FUNCTION deribit_ts.open_tasks(
    p_datasets text[], p_keys text[], p_min_priority integer, p_max_priority integer, p_within tstzrange[] DEFAULT NULL)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM deribit_ts.tasks
     WHERE state IN ('pending', 'running')
       AND priority BETWEEN p_min_priority AND p_max_priority
       AND dataset = ANY (p_datasets)
       AND (p_keys IS NULL OR key = ANY (p_keys))
       AND deribit_ts.task_within(cursor, range_start, range_end, p_within[array_position(p_datasets, dataset)],
                                  p_within IS NULL);
$$;

-- Claim the next task for `p_owner`: a pending one, or a running one whose lease expired (its worker
-- died), among the tasks of priority p_min_priority..p_max_priority (inclusive) and, with p_within (one range per
-- dataset, in the order of p_datasets), among those left inside the range of their dataset. Backfill runs claim priorities
-- >= 1, the collector its own negative ones (deribit_ts/ingest/tasks.py), so neither ever takes the other's work.
-- SKIP LOCKED lets any number of workers, in any number of processes, claim concurrently. Order: priority
-- (urgency tier), then the soonest expiry, then a key's newest range first: the order of tasks_claim_idx.
DROP FUNCTION IF EXISTS deribit_ts.claim_task(text, interval, text[], text[]);
DROP FUNCTION IF EXISTS deribit_ts.claim_task(text, interval, text[], text[], integer, integer);
CREATE OR REPLACE FUNCTION deribit_ts.claim_task(
    p_owner text, p_lease interval, p_datasets text[], p_keys text[], p_min_priority integer, p_max_priority integer,
    p_within tstzrange[] DEFAULT NULL)
RETURNS SETOF deribit_ts.tasks
LANGUAGE sql AS $$
    UPDATE deribit_ts.tasks t
       SET state = 'running', lease_owner = p_owner, lease_expires = now() + p_lease,
           attempts = t.attempts + 1, updated_at = now()
     WHERE t.task_id = (
            SELECT task_id FROM deribit_ts.tasks
             WHERE (state = 'pending' OR (state = 'running' AND lease_expires < now()))
               AND priority BETWEEN p_min_priority AND p_max_priority
               AND dataset = ANY (p_datasets)
               AND (p_keys IS NULL OR key = ANY (p_keys))
               AND deribit_ts.task_within(cursor, range_start, range_end, p_within[array_position(p_datasets, dataset)],
                                          p_within IS NULL)
             ORDER BY priority, due, range_start DESC, task_id
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
    RETURNING t.*;
$$;

-- How many rows of a dataset are stored for `p_key` in `p_range`, counted on the table (primary-key range scan).
-- NULL for a dataset this file does not know (its coverage records are then left as they are).
CREATE OR REPLACE FUNCTION deribit_ts.stored_rows(p_dataset text, p_key text, p_range tstzrange)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN CASE p_dataset
        WHEN 'candles' THEN (SELECT count(*) FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
                              WHERE i.instrument_name = p_key AND c.ts >= lower(p_range) AND c.ts < upper(p_range))
        WHEN 'funding' THEN (SELECT count(*) FROM deribit.funding_rate_history f
                               JOIN deribit.instruments i ON i.id = f.instrument_id
                              WHERE i.instrument_name = p_key AND f.ts >= lower(p_range) AND f.ts < upper(p_range))
        WHEN 'index' THEN (SELECT count(*) FROM deribit.index_price_history p
                            WHERE p.index_name = p_key AND p.ts >= lower(p_range) AND p.ts < upper(p_range))
        WHEN 'dvol' THEN (SELECT count(*) FROM deribit.volatility_index v
                           WHERE v.currency = p_key AND v.ts >= lower(p_range) AND v.ts < upper(p_range))
        WHEN 'trades' THEN (SELECT count(*) FROM deribit.trades t
                             WHERE t.instrument_name = p_key AND t.ts >= lower(p_range) AND t.ts < upper(p_range))
        -- a delivery happens at 08:00 UTC of its date (deribit_ts/ingest/delivery.py)
        WHEN 'delivery' THEN (SELECT count(*) FROM deribit.delivery_prices d
                               WHERE d.index_name = p_key AND (d.date + time '08:00') AT TIME ZONE 'UTC' <@ p_range)
    END;
END;
$$;

-- Record that `p_fetched` of (dataset, key) was fetched and held `p_rows` rows. A range fetched again (the
-- settling tail, a re-planned task) supersedes the older records over it: they are cut back to what the new
-- fetch does not cover, and their rows recounted on the table. So coverage records never overlap, and the rows
-- they add up to are the rows stored (deribit.coverage.rows = count(*)). Anything that writes rows of a dataset
-- records them here.
-- p_filled (options): the minutes of p_fetched answered with filler candles that are not stored as rows; a record
-- cut back keeps its filler minutes inside what remains of it.
DROP FUNCTION IF EXISTS deribit_ts.record_coverage(text, text, tstzrange, integer, timestamptz, bigint);
CREATE OR REPLACE FUNCTION deribit_ts.record_coverage(
    p_dataset text, p_key text, p_fetched tstzrange, p_rows integer, p_final_until timestamptz, p_run_id bigint,
    p_filled tstzmultirange DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old deribit_ts.coverage;
    pieces tstzrange[];
BEGIN
    -- Serialized per (dataset, key) until the caller's transaction ends: two writers of one key would each miss
    -- the other's uncommitted record and leave overlapping ones (rows then counted twice).
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.coverage'), hashtext(p_dataset || '/' || p_key));
    FOR old IN SELECT * FROM deribit_ts.coverage
                WHERE dataset = p_dataset AND key = p_key AND lower(fetched) < upper(p_fetched)
                  AND fetched && p_fetched
                  AND deribit_ts.stored_rows(p_dataset, p_key, 'empty') IS NOT NULL
                FOR UPDATE
    LOOP
        pieces := ARRAY(SELECT unnest(tstzmultirange(old.fetched) - tstzmultirange(p_fetched)) ORDER BY 1);
        IF cardinality(pieces) = 0 THEN
            DELETE FROM deribit_ts.coverage WHERE coverage_id = old.coverage_id;
            CONTINUE;
        END IF;
        -- The first piece keeps the record (its id and rollup mark); a second one (the new fetch inside the old) is
        -- a copy of it.
        UPDATE deribit_ts.coverage
           SET fetched = pieces[1], rows = deribit_ts.stored_rows(p_dataset, p_key, pieces[1]),
               filled = nullif(old.filled * tstzmultirange(pieces[1]), '{}')
         WHERE coverage_id = old.coverage_id;
        IF cardinality(pieces) > 1 THEN
            INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, fetched_at, run_id, rolled_up_at,
                                             filled)
            VALUES (p_dataset, p_key, pieces[2], deribit_ts.stored_rows(p_dataset, p_key, pieces[2]), old.final_until,
                    old.fetched_at, old.run_id, old.rolled_up_at, nullif(old.filled * tstzmultirange(pieces[2]), '{}'));
        END IF;
    END LOOP;
    INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, run_id, filled)
    VALUES (p_dataset, p_key, p_fetched, p_rows, p_final_until, p_run_id, nullif(p_filled, '{}'));
END;
$$;

-- What a coverage record holds, derived from the table when the record is written or its window changes (a trigger,
-- so a record written by any path, an older version's included, carries it): its first and last stored row, the
-- minutes of its `filled` (option fillers: held, not stored), and `empty`, the steps of its window with neither a
-- row nor a filler (the exchange answered nothing there). The window's rows are read with its bounds as constants
-- (EXECUTE), so TimescaleDB plans only the one or two chunks of the window; the islands of rows are merged only
-- when the window is not full (an outage, a listing, an option's minutes before its first trade).
CREATE OR REPLACE FUNCTION deribit_ts.coverage_derive()
RETURNS pg_catalog.trigger
LANGUAGE plpgsql AS $$
DECLARE
    step interval := CASE NEW.dataset WHEN 'candles' THEN interval '1 minute' WHEN 'funding' THEN interval '1 hour' END;
    source text := CASE NEW.dataset WHEN 'candles' THEN 'deribit.candles_1m'
                                    WHEN 'funding' THEN 'deribit.funding_rate_history' END;
    lo timestamptz := lower(NEW.fetched);
    hi timestamptz := upper(NEW.fetched);
    grid_first timestamptz;
    steps bigint := 0;
    stored bigint;
    instrument integer;
    islands tstzmultirange;
BEGIN
    -- A merge of touching records (deribit_ts.merge_coverage) combines what they derived: kept as given.
    IF current_setting('deribit_ts.coverage_merging', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.filled_minutes := coalesce((SELECT sum(ceil(extract(epoch FROM upper(r) - lower(r)) / 60))
                                      FROM unnest(NEW.filled) r), 0);
    NEW.first_row := NULL;
    NEW.last_row := NULL;
    NEW.empty := NULL;
    SELECT i.id INTO instrument FROM deribit.instruments i WHERE i.instrument_name = NEW.key;
    IF step IS NULL OR instrument IS NULL OR lo IS NULL OR hi IS NULL THEN
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT min(ts), max(ts), count(*) FROM %s WHERE instrument_id = %s AND ts >= %L AND ts < %L',
                   source, instrument, lo, hi)
       INTO NEW.first_row, NEW.last_row, stored;
    -- the grid points (whole minutes or hours) inside [lo, hi)
    grid_first := date_trunc(CASE NEW.dataset WHEN 'candles' THEN 'minute' ELSE 'hour' END, lo);
    IF grid_first < lo THEN
        grid_first := grid_first + step;
    END IF;
    IF grid_first < hi THEN
        steps := floor(extract(epoch FROM hi - grid_first - interval '1 microsecond') / extract(epoch FROM step)) + 1;
    END IF;
    IF step = interval '1 minute' THEN
        stored := stored + NEW.filled_minutes;
    END IF;
    IF stored >= steps THEN
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT range_agg(tstzrange(ts, ts + %L::interval)) FROM %s
                     WHERE instrument_id = %s AND ts >= %L AND ts < %L', step, source, instrument, lo, hi)
       INTO islands;
    NEW.empty := nullif(tstzmultirange(NEW.fetched) - coalesce(islands, '{}') - coalesce(NEW.filled, '{}'), '{}');
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER coverage_derive BEFORE INSERT OR UPDATE OF fetched, rows, filled ON deribit_ts.coverage
    FOR EACH ROW EXECUTE FUNCTION deribit_ts.coverage_derive();

-- Records written before the columns existed are derived once (an update of `rows` fires the trigger).
UPDATE deribit_ts.coverage SET rows = rows WHERE filled_minutes IS NULL;

-- What is stored of (dataset, key) inside `p_wanted`: the first and last row, how many rows a gapless series
-- would hold there, and the resolution each span is held at. Candles are held at one minute and funding at one
-- hour; the index comes at the resolution the exchange still serves for each period (one minute only for about
-- the last two days, hourly for a month, daily before: docs/deribit.md), so its expected rows follow the
-- resolutions it is held at, span by span.
CREATE OR REPLACE FUNCTION deribit_ts.held(p_dataset text, p_key text, p_wanted tstzmultirange)
RETURNS TABLE (first_ts timestamptz, last_ts timestamptz, expected_rows bigint, resolution text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo timestamptz := lower(p_wanted);
    hi timestamptz := upper(p_wanted);
BEGIN
    IF p_dataset = 'candles' THEN
        RETURN QUERY
        SELECT (SELECT min(c.ts) FROM deribit.candles_1m c WHERE c.instrument_id = i.id AND c.ts >= lo AND c.ts < hi),
               (SELECT max(c.ts) FROM deribit.candles_1m c WHERE c.instrument_id = i.id AND c.ts >= lo AND c.ts < hi),
               (SELECT sum(ceil(extract(epoch FROM upper(r) - lower(r)) / 60))::bigint FROM unnest(p_wanted) r),
               '1 minute'::text
          FROM deribit.instruments i WHERE i.instrument_name = p_key;
    ELSIF p_dataset = 'funding' THEN
        RETURN QUERY
        SELECT (SELECT min(f.ts) FROM deribit.funding_rate_history f
                 WHERE f.instrument_id = i.id AND f.ts >= lo AND f.ts < hi),
               (SELECT max(f.ts) FROM deribit.funding_rate_history f
                 WHERE f.instrument_id = i.id AND f.ts >= lo AND f.ts < hi),
               (SELECT sum(ceil(extract(epoch FROM upper(r) - date_trunc('hour', lower(r))) / 3600)
                           - CASE WHEN lower(r) > date_trunc('hour', lower(r)) THEN 1 ELSE 0 END)::bigint
                  FROM unnest(p_wanted) r),
               '1 hour'::text
          FROM deribit.instruments i WHERE i.instrument_name = p_key;
    ELSIF p_dataset = 'index' THEN
        RETURN QUERY
        WITH spans AS (
            SELECT p.resolution AS res, min(p.ts) AS first, max(p.ts) AS last
              FROM deribit.index_price_history p
             WHERE p.index_name = p_key AND p.ts >= lo AND p.ts < hi
             GROUP BY p.resolution
        )
        SELECT min(first), max(last),
               coalesce(sum(floor(extract(epoch FROM last - first) / extract(epoch FROM res)) + 1), 0)::bigint,
               string_agg(format('%s %s..%s', CASE res WHEN interval '1 minute' THEN '1 minute'
                                                       WHEN interval '1 hour' THEN '1 hour'
                                                       WHEN interval '1 day' THEN '1 day' ELSE res::text END,
                                 to_char(first AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                                 to_char(last AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')), ', ' ORDER BY first)
          FROM spans;
    END IF;
END;
$$;

-- Coverage against the targets: for each (dataset, key) what was asked, what is still missing.
-- "Never fetched" is in `missing`; "fetched, the exchange had nothing" is covered with rows = 0.
-- Everything is over what was asked for (the records overlapping `wanted`). `rows` adds up coverage records, which
-- never overlap (deribit_ts.record_coverage): it is the number of rows stored for the key inside what was wanted;
-- `filler_minutes` the minutes an option holds as filler candles (answered by the exchange, not stored). Both count
-- as held: `completeness_pct` is (rows + filler_minutes) / `expected_rows`, what a gapless series would hold in
-- `wanted` (for the index, at the resolutions it is held at: `resolution` lists them span by span). It is below
-- 100 where the exchange had no data (an outage, an option's minutes before its first trade) or nothing was
-- fetched yet.
-- Candles and funding are read from the records' derived columns (first_row, last_row, filled_minutes:
-- deribit_ts.coverage_derive), a few rows per 5,000 candles; only the index, whose resolution changes span by
-- span, is read from its table.
CREATE OR REPLACE VIEW deribit.coverage AS
SELECT t.dataset,
       t.key,
       lower(t.wanted)                                          AS wanted_from,
       upper(t.wanted)                                          AS wanted_until,
       t.wanted - coalesce(c.done, '{}'::tstzmultirange)        AS missing,
       coalesce(c.fetched_rows, 0)                              AS rows,
       -- candles and funding: the runs of minutes (hours) the exchange had nothing for, kept by the records (merged
       -- records unite them); the other series: their records without rows
       CASE WHEN t.dataset IN ('candles', 'funding')
            THEN (SELECT count(*) FROM unnest(t.wanted * coalesce(c.empty, '{}'::tstzmultirange)) r)
            ELSE coalesce(c.empty_ranges, 0) END                AS empty_ranges,
       isempty(t.wanted - coalesce(c.done, '{}'::tstzmultirange)) AS complete,
       c.last_fetched_at,
       -- Fetched but still inside the exchange's settling time when fetched: the next run fetches it again.
       (t.wanted * coalesce(c.done, '{}'::tstzmultirange)) - coalesce(c.final, '{}'::tstzmultirange) AS unsettled,
       coalesce(c.first_row, h.first_ts)                        AS first_ts,
       coalesce(c.last_row, h.last_ts)                          AS last_ts,
       coalesce(g.steps, h.expected_rows)                       AS expected_rows,
       round(100.0 * (coalesce(c.fetched_rows, 0) + coalesce(c.filler_minutes, 0))
             / nullif(coalesce(g.steps, h.expected_rows), 0), 2) AS completeness_pct,
       coalesce(g.resolution, h.resolution)                     AS resolution,
       coalesce(c.filler_minutes, 0)                            AS filler_minutes
FROM deribit_ts.targets t
LEFT JOIN LATERAL (
    SELECT range_agg(fetched) AS done,
           range_agg(tstzrange(lower(fetched), greatest(lower(fetched), least(upper(fetched), final_until)))) AS final,
           sum(rows)          AS fetched_rows,
           sum(filled_minutes) AS filler_minutes,
           count(*) FILTER (WHERE rows = 0) AS empty_ranges,
           range_agg(cv.empty) AS empty,
           max(fetched_at)    AS last_fetched_at,
           min(first_row)     AS first_row,
           max(last_row)      AS last_row
      FROM deribit_ts.coverage cv
     WHERE cv.dataset = t.dataset AND cv.key = t.key AND cv.fetched && t.wanted
) c ON true
-- the grid steps of what was wanted: minutes for candles, whole hours for funding
LEFT JOIN LATERAL (
    SELECT sum(CASE t.dataset
                   WHEN 'candles' THEN ceil(extract(epoch FROM upper(r) - lower(r)) / 60)
                   ELSE ceil(extract(epoch FROM upper(r) - date_trunc('hour', lower(r))) / 3600)
                        - CASE WHEN lower(r) > date_trunc('hour', lower(r)) THEN 1 ELSE 0 END END)::bigint AS steps,
           CASE t.dataset WHEN 'candles' THEN '1 minute' WHEN 'funding' THEN '1 hour' END AS resolution
      FROM unnest(t.wanted) r
     WHERE t.dataset IN ('candles', 'funding')
) g ON true
LEFT JOIN LATERAL (SELECT * FROM deribit_ts.held(t.dataset, t.key, t.wanted) WHERE t.dataset = 'index' OFFSET 0) h ON true;

-- Record one committed window of a task, in the caller's transaction with the window's rows: the
-- coverage it proves (final up to p_final_until), the task's cursor (resume point), the lease extension, the watermark and the
-- run's counters. Returns false, and changes nothing, when the caller no longer holds the task's lease.
-- p_filled: the minutes the window's answer filled with zero-volume candles that were not stored (options).
DROP FUNCTION IF EXISTS deribit_ts.task_progress(bigint, text, interval, bigint, timestamptz, timestamptz, timestamptz,
                                                 integer, integer, integer, integer, integer);
CREATE OR REPLACE FUNCTION deribit_ts.task_progress(
    p_task_id bigint, p_owner text, p_lease interval, p_run_id bigint,
    p_from timestamptz, p_to timestamptz, p_final_until timestamptz, p_rows integer,
    p_inserted integer, p_revised integer, p_requests integer, p_retries integer,
    p_filled tstzmultirange DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    t deribit_ts.tasks;
BEGIN
    UPDATE deribit_ts.tasks
       SET cursor = greatest(coalesce(cursor, range_start), p_to), lease_expires = now() + p_lease, updated_at = now()
     WHERE task_id = p_task_id AND lease_owner = p_owner AND state = 'running'
    RETURNING * INTO t;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_from < p_to THEN  -- (an empty window proves nothing, and a coverage record is never empty)
        PERFORM deribit_ts.record_coverage(t.dataset, t.key, tstzrange(p_from, p_to), p_rows,
                                           least(p_to, p_final_until), p_run_id, p_filled);
    END IF;
    INSERT INTO deribit_ts.watermarks AS w (dataset, key, covered_until)
    VALUES (t.dataset, t.key, p_to)
    ON CONFLICT (dataset, key) DO UPDATE
        SET covered_until = greatest(w.covered_until, EXCLUDED.covered_until), updated_at = now();
    INSERT INTO deribit_ts.run_tasks AS r (run_id, task_id, rows_fetched, inserted, revised, requests, retries)
    VALUES (p_run_id, p_task_id, p_rows, p_inserted, p_revised, p_requests, p_retries)
    ON CONFLICT (run_id, task_id) DO UPDATE
        SET rows_fetched = r.rows_fetched + EXCLUDED.rows_fetched, inserted = r.inserted + EXCLUDED.inserted,
            revised = r.revised + EXCLUDED.revised, requests = r.requests + EXCLUDED.requests,
            retries = r.retries + EXCLUDED.retries;
    RETURN true;
END;
$$;

-- Close a task: done, or failed with the exchange's message. Only the lease holder may.
CREATE OR REPLACE FUNCTION deribit_ts.finish_task(
    p_task_id bigint, p_owner text, p_run_id bigint, p_error text, p_duration interval)
RETURNS boolean
LANGUAGE sql AS $$
    WITH closed AS (
        UPDATE deribit_ts.tasks
           SET state = CASE WHEN p_error IS NULL THEN 'done' ELSE 'failed' END,
               last_error = p_error, lease_owner = NULL, lease_expires = NULL, updated_at = now()
         WHERE task_id = p_task_id AND lease_owner = p_owner AND state = 'running'
        RETURNING task_id
    ), logged AS (
        INSERT INTO deribit_ts.run_tasks AS r (run_id, task_id, errors, error, duration)
        SELECT p_run_id, task_id, (p_error IS NOT NULL)::int, p_error, p_duration FROM closed
        ON CONFLICT (run_id, task_id) DO UPDATE
            SET errors = r.errors + EXCLUDED.errors, error = EXCLUDED.error, duration = r.duration + EXCLUDED.duration
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM closed);
$$;

-- Hand a worker's running tasks back to the pool (graceful stop, or the worker's process is known dead).
CREATE OR REPLACE FUNCTION deribit_ts.release_tasks(p_owners text[])
RETURNS integer
LANGUAGE sql AS $$
    WITH released AS (
        UPDATE deribit_ts.tasks
           SET state = 'pending', lease_owner = NULL, lease_expires = NULL, updated_at = now()
         WHERE state = 'running' AND lease_owner = ANY (p_owners)
        RETURNING 1
    )
    SELECT count(*)::int FROM released;
$$;

-- Per run and dataset: what a run did (for `deribit-ts runs` and the backfill summary): the details of its tasks
-- still kept, plus the totals of those deleted once done and old (deribit_ts.compact_bookkeeping).
CREATE OR REPLACE VIEW deribit_ts.run_datasets AS
SELECT run_id,
       dataset,
       sum(tasks)::bigint        AS tasks,
       sum(failed_tasks)::bigint AS failed_tasks,
       sum(rows_fetched)::bigint AS rows_fetched,
       sum(inserted)::bigint     AS inserted,
       sum(revised)::bigint      AS revised,
       sum(requests)::bigint     AS requests,
       sum(retries)::bigint      AS retries,
       sum(errors)::bigint       AS errors,
       sum(task_time)            AS task_time
FROM (
    SELECT r.run_id, t.dataset, 1 AS tasks, (r.error IS NOT NULL)::int AS failed_tasks, r.rows_fetched, r.inserted,
           r.revised, r.requests, r.retries, r.errors, r.duration AS task_time
      FROM deribit_ts.run_tasks r
      JOIN deribit_ts.tasks t USING (task_id)
    UNION ALL
    SELECT run_id, dataset, tasks, failed_tasks, rows_fetched, inserted, revised, requests, retries, errors, task_time
      FROM deribit_ts.run_dataset_totals
) d
GROUP BY run_id, dataset;
