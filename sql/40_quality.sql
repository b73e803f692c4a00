-- Data quality in SQL: where rows are missing and why (deribit.gap_report), which stored rows cannot be right
-- (deribit.sanity_violations). Both are views built so that a filter on instrument_name (and, for the sanity
-- rules, on ts) reaches the base tables: a per-instrument report reads that instrument's rows only.
--
-- The public views read tables, functions and the helper views of schema deribit_ts only (no other public view).

-- ---------------------------------------------------------------------------------------------------------------
-- Gaps
-- ---------------------------------------------------------------------------------------------------------------

-- The gaps come from the bookkeeping written with the rows: what was asked for (deribit_ts.targets), what was fetched
-- (deribit_ts.coverage.fetched) and, inside each fetched window, the steps the exchange answered with nothing
-- (coverage.empty, derived from the table when the window was recorded: deribit_ts.coverage_derive). So the report
-- reads a few bookkeeping rows per 5,000 candles, never the candles themselves; probing each instrument's history
-- cost 35 times a count(*) of every candle.

-- Holes in an instrument's trade_seq inside what was fetched: Deribit numbers each instrument's trades without
-- gaps, so two stored trades whose numbers are not consecutive, both inside one settled stretch of the trades'
-- coverage, have lost the trades between them. [gap_start, gap_end] are the times of the trades either side.
-- The jumps are kept when trades are written (deribit_ts.trade_seq_gaps, a few rows an instrument): numbering
-- every stored trade here made each read of gap_report scan the whole tape.
CREATE OR REPLACE VIEW deribit_ts.trade_seq_holes AS
SELECT s.instrument_name, s.prev_ts AS gap_start, s.ts AS gap_end, s.trade_seq - s.prev_seq - 1 AS missing_trades
FROM deribit_ts.trade_seq_gaps s
WHERE EXISTS (SELECT 1
                FROM (SELECT range_agg(tstzrange(lower(v.fetched), least(upper(v.fetched), v.final_until))) AS settled
                        FROM deribit_ts.coverage v
                       WHERE v.dataset = 'trades' AND v.key = s.instrument_name
                         AND least(upper(v.fetched), v.final_until) > lower(v.fetched)) c
               WHERE c.settled @> tstzrange(s.prev_ts, s.ts, '[]'));

-- Every maximal run of missing rows inside what was asked for. Minutes the exchange answered with a row
-- (zero-volume filler candles included) are stored, and option fillers are held in coverage.filled: neither is a
-- gap. cause: not_fetched (no coverage record: a run never got there), exchange_empty (fetched, the exchange had
-- nothing: an outage), before_first_trade (an option's fetched span before its first traded minute, or all of it
-- when it never traded: there was nothing to have, not an outage).
CREATE OR REPLACE VIEW deribit.gap_report AS
SELECT t.dataset,
       t.key                                                           AS instrument_name,
       lower(g.gap)                                                    AS gap_start,
       upper(g.gap)                                                    AS gap_end,
       (extract(epoch FROM upper(g.gap) - lower(g.gap)) / 60)::bigint  AS missing_minutes,
       g.cause
FROM deribit_ts.targets t
JOIN deribit.instruments i ON i.instrument_name = t.key
CROSS JOIN LATERAL (
    SELECT coalesce(range_agg(cv.fetched), '{}') AS fetched,
           coalesce(range_agg(cv.empty), '{}')   AS empty,
           min(cv.first_row)                     AS first_row
      FROM deribit_ts.coverage cv
     WHERE cv.dataset = t.dataset AND cv.key = t.key
) c
CROSS JOIN LATERAL (
    SELECT missing.gap, 'not_fetched' AS cause
      FROM unnest(t.wanted - c.fetched) AS missing (gap)
    UNION ALL
    SELECT empty.gap,
           CASE WHEN i.kind = 'option' AND t.dataset = 'candles'
                     AND (c.first_row IS NULL OR upper(empty.gap) <= c.first_row)
                THEN 'before_first_trade' ELSE 'exchange_empty' END
      FROM unnest(t.wanted * c.empty) AS empty (gap)
) g
WHERE t.dataset IN ('candles', 'funding')
UNION ALL
SELECT 'trades'::text, h.instrument_name, h.gap_start, h.gap_end,
       (extract(epoch FROM h.gap_end - h.gap_start) / 60)::bigint, 'trade_seq_hole'::text
FROM deribit_ts.trade_seq_holes h;
-- the per-instrument probes of an earlier version (nothing of ours uses them any more)
DROP FUNCTION IF EXISTS deribit_ts.gaps_of(text, text, integer, tstzmultirange);
DROP FUNCTION IF EXISTS deribit_ts.row_holes(text, integer);
DROP FUNCTION IF EXISTS deribit_ts.row_islands(text, integer, timestamptz, timestamptz, interval);

-- ---------------------------------------------------------------------------------------------------------------
-- Sanity rules
-- ---------------------------------------------------------------------------------------------------------------

-- The spike rule. A bad tick is a trade far from where the market is, that the market does not follow: the wick
-- of a candle (high above its open/close, low below) or a close that the next minute gives back. What "far"
-- means depends on how the instrument trades:
--
-- Perpetuals and futures trade nearly every minute, so their own recent range is a scale: the typical range is
-- the mean high-low of the previous 60 traded minutes (within a day), with the widest of them left out, so one
-- earlier bad tick does not hide the next. A move is a spike when it exceeds 10 times that typical range: an
-- honest one-minute wick is a fraction of a few typical ranges (the simulator's are at most 1.5 minute-sigma),
-- while the bad ticks reported in Deribit's chart data are 100 USD and more (as users of other Deribit
-- downloaders report them) and freqtrade warns at a 10 % jump. A true jump of the market (a body that stays where
-- it went) is no spike: the close rule needs the next close to give back at least half of the move. With fewer
-- than 10 traded minutes of history there is no judgement. Only candles whose wick or body is at least 0.5 % of
-- the price and two ticks are judged: the look-back costs an index probe per candle judged, and at 0.5 % that is
-- about one candle in 5,000 of the simulator's BTC history. Smaller moves are not reported as bad ticks, whatever
-- the recent range: Deribit's reported bad ticks (100 USD and more at 6,000-20,000 USD) are 0.5-1.7 %.
--
-- Options trade in a few minutes a day, most of them at one price (open = high = low = close), so their own
-- recent range is mostly zero, and the step from one traded minute to the next mixes the bid-ask bounce with
-- hours of the underlying's drift: neither is a scale for one minute. The scale is the option's own price in that
-- minute (the body, as near to its mark as the candle knows): a trade beyond the minute's open and close by more
-- than 2 % of that price, and by two ticks at least (one tick of a cheap option is many percent of it, and the
-- book's next level is one tick away), is reported. 2 % is a choice: the underlying moves about 0.1 % in a minute,
-- which moves most options' prices by less than 2 % (their leverage times that), and the smallest bad tick the
-- simulator plants is 3 %; a real sweep through a thin book beyond 2 % is reported too, and deserves a look. The
-- body is never judged: an option that opens at the bid and closes at the ask, or that jumps after hours without
-- a trade and is traded back later, is ordinary thin trading. So an option's spike needs no look-back at all.
--
-- The perpetual's and futures' rule for one candle that is already suspect (see above): NULL when it is no spike.
-- The look-back and the next candle are read with their time bounds as constants (EXECUTE), so TimescaleDB picks
-- the one or two chunks they are in when planning; as parameters, every execution would test all chunks of the
-- history again (15 ms a candle over eight years of weekly chunks).
CREATE OR REPLACE FUNCTION deribit_ts.spike_detail(
    p_instrument_id integer, p_ts timestamptz, p_open double precision, p_high double precision,
    p_low double precision, p_close double precision)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    typical double precision;
    minutes bigint;
    next_close double precision;
    what text;
    price double precision;
    size double precision;
    found_text text;
BEGIN
    EXECUTE format(
        'SELECT (sum(r) - max(r)) / nullif(count(*) - 1, 0), count(*)
           FROM (SELECT high - low AS r FROM deribit.candles_1m
                  WHERE instrument_id = %s AND ts < %L AND ts >= %L AND volume > 0
                  ORDER BY ts DESC LIMIT 60) recent',
        p_instrument_id, p_ts, p_ts - interval '1 day') INTO typical, minutes;
    IF minutes < 10 OR NOT typical > 0 THEN
        RETURN NULL;
    END IF;
    FOR what, price, size IN
        VALUES ('high', p_high, p_high - greatest(p_open, p_close)),
               ('low', p_low, least(p_open, p_close) - p_low),
               ('close', p_close, abs(p_close - p_open))
    LOOP
        CONTINUE WHEN NOT size > 10 * typical;
        IF what = 'close' THEN  -- a close counts only if the next close gives back at least half of the move
            EXECUTE format('SELECT close FROM deribit.candles_1m WHERE instrument_id = %s AND ts > %L AND ts < %L
                             ORDER BY ts LIMIT 1', p_instrument_id, p_ts, p_ts + interval '1 day') INTO next_close;
            CONTINUE WHEN next_close IS NULL OR abs(next_close - p_open) > size / 2;
        END IF;
        found_text := concat_ws('; ', found_text, format(
            '%s %s is %s beyond the body: %s times the typical range %s of the previous %s traded minutes',
            what, price, size, round((size / typical)::numeric, 1), round(typical::numeric, 8), minutes));
    END LOOP;
    RETURN found_text;
END;
$$;

-- An option's spike (see above): its wicks beyond 2 % of the body's price and two ticks; NULL when none.
CREATE OR REPLACE FUNCTION deribit_ts.option_spike_detail(
    p_open double precision, p_high double precision, p_low double precision, p_close double precision,
    p_tick double precision)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT nullif(concat_ws('; ',
        CASE WHEN p_high - greatest(p_open, p_close) > greatest(0.02 * greatest(p_open, p_close), 1.5 * p_tick)
             THEN format('high %s is %s beyond the body: %s %% of the option''s price %s (options: beyond 2 %% and two ticks)',
                         p_high, trim_scale(round((p_high - greatest(p_open, p_close))::numeric, 10)),
                         round((100 * (p_high - greatest(p_open, p_close)) / greatest(p_open, p_close))::numeric, 1),
                         greatest(p_open, p_close)) END,
        CASE WHEN least(p_open, p_close) - p_low > greatest(0.02 * least(p_open, p_close), 1.5 * p_tick)
             THEN format('low %s is %s beyond the body: %s %% of the option''s price %s (options: beyond 2 %% and two ticks)',
                         p_low, trim_scale(round((least(p_open, p_close) - p_low)::numeric, 10)),
                         round((100 * (least(p_open, p_close) - p_low) / least(p_open, p_close))::numeric, 1),
                         least(p_open, p_close)) END), '')
$$;

-- Every candle rule but candle_trades_mismatch, judged on the stored candles: what deribit_ts.refresh_sanity
-- stores and deribit.sanity_violations judges on read for the candles newer than the last refresh. A filter on
-- instrument_id/instrument_name and ts reaches the candle scan.
CREATE OR REPLACE VIEW deribit_ts.candle_rule_violations AS
SELECT c.instrument_id, i.instrument_name, c.ts, v.rule, v.detail
FROM deribit.candles_1m c
JOIN deribit.instruments i ON i.id = c.instrument_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN i.kind = 'option'
                THEN greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low)
                     > greatest(0.02 * least(c.open, c.close), 1.5 * coalesce(i.tick_size, 0))
                ELSE greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low,
                              abs(c.close - c.open))
                     > greatest(0.005 * abs(c.close), 2 * coalesce(i.tick_size, 0)) END AS candidate,
           -- NaN and infinities compare above every number in PostgreSQL, so these bounds catch them too
           greatest(abs(c.open), abs(c.high), abs(c.low), abs(c.close)) > 1e12
           OR greatest(abs(c.volume), abs(c.cost)) > 1e15 AS absurd
) k
CROSS JOIN LATERAL (
    SELECT 'high_below_open_close' AS rule,
           format('high %s below max(open %s, close %s)', c.high, c.open, c.close) AS detail
     WHERE c.high < greatest(c.open, c.close)
    UNION ALL
    SELECT 'low_above_open_close', format('low %s above min(open %s, close %s)', c.low, c.open, c.close)
     WHERE c.low > least(c.open, c.close)
    UNION ALL
    SELECT 'high_below_low', format('high %s below low %s', c.high, c.low)
     WHERE c.high < c.low
    UNION ALL
    SELECT 'non_positive_price', format('open %s high %s low %s close %s', c.open, c.high, c.low, c.close)
     WHERE least(c.open, c.high, c.low, c.close) <= 0
    UNION ALL
    SELECT 'negative_volume_or_cost', format('volume %s cost %s', c.volume, c.cost)
     WHERE c.volume < 0 OR c.cost < 0
    UNION ALL
    SELECT 'volume_without_cost', format('volume %s with cost %s', c.volume, c.cost)
     WHERE c.volume > 0 AND c.cost = 0
    UNION ALL
    SELECT 'cost_without_volume', format('cost %s with volume %s', c.cost, c.volume)
     WHERE c.cost > 0 AND c.volume = 0
    UNION ALL
    SELECT 'outside_instrument_life',
           format('candle at %s outside the life %s .. %s', c.ts, date_trunc('minute', i.creation_ts), i.expiry)
     WHERE c.ts < date_trunc('minute', i.creation_ts) OR c.ts >= i.expiry
    UNION ALL
    SELECT 'off_minute_grid', format('timestamp %s is not a whole minute', c.ts)
     WHERE c.ts <> date_trunc('minute', c.ts)
    UNION ALL
    -- no instrument trades near a trillion in its quote currency, nor that many coins or dollars in a minute: such
    -- a value (a non-finite one, 1e308) is a corrupt row, whatever the other rules say of it
    SELECT 'absurd_value', format('open %s high %s low %s close %s volume %s cost %s',
                                  c.open, c.high, c.low, c.close, c.volume, c.cost)
     WHERE k.absurd
    UNION ALL
    SELECT 'spike', d.detail
      FROM (SELECT CASE WHEN i.kind = 'option'
                        THEN deribit_ts.option_spike_detail(c.open, c.high, c.low, c.close, coalesce(i.tick_size, 0))
                        ELSE deribit_ts.spike_detail(c.instrument_id, c.ts, c.open, c.high, c.low, c.close) END
                   AS detail
             WHERE k.candidate AND NOT k.absurd) d
     WHERE d.detail IS NOT NULL
) v
-- Only rows that can break a rule reach the checks: the scan stays a filter over the table.
WHERE c.high < greatest(c.open, c.close) OR c.low > least(c.open, c.close) OR c.high < c.low
   OR least(c.open, c.high, c.low, c.close) <= 0 OR c.volume < 0 OR c.cost < 0
   OR (c.volume > 0) <> (c.cost > 0)
   OR c.ts < date_trunc('minute', i.creation_ts) OR c.ts >= i.expiry
   OR c.ts <> date_trunc('minute', c.ts)
   OR greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low)
      > greatest(0.005 * least(abs(c.close), abs(c.open)), 1.5 * coalesce(i.tick_size, 0))
   OR (i.kind <> 'option' AND abs(c.close - c.open) > greatest(0.005 * abs(c.close), 2 * coalesce(i.tick_size, 0)))
   OR greatest(abs(c.open), abs(c.high), abs(c.low), abs(c.close)) > 1e12
   OR greatest(abs(c.volume), abs(c.cost)) > 1e15;

-- The candle_trades_mismatch rule: a stored candle that is not the aggregate of its minute's stored trades (open the
-- first price, high the highest, low the lowest, close the last, volume and cost the sums in the candle's units:
-- options and linear instruments count amount in the coin, inverse ones in USD), judged only where both are
-- complete for that minute: the trades' and the candles' coverage both hold the whole minute, settled. Prices must
-- be equal; volume and cost agree to the exchange's 8 decimals.
-- Driven by the trades' coverage records (a candle is joined to the one record holding its minute: records never
-- overlap), so where no trades were fetched no candle is read; filters on instrument_name and ts reach the candles.
CREATE OR REPLACE VIEW deribit_ts.candle_trades_mismatch AS
SELECT i.instrument_name, c.ts,
       format('candle open %s high %s low %s close %s volume %s cost %s; its %s trades: %s %s %s %s %s %s',
              c.open, c.high, c.low, c.close, c.volume, c.cost, coalesce(a.trades, 0), a.open, a.high, a.low,
              a.close, round(a.volume::numeric, 8), round(a.cost::numeric, 8)) AS detail,
       c.instrument_id
FROM deribit_ts.coverage tv
JOIN deribit.instruments i ON i.instrument_name = tv.key
JOIN deribit.candles_1m c ON c.instrument_id = i.id AND c.ts >= lower(tv.fetched)
                         AND c.ts <= least(upper(tv.fetched), tv.final_until) - interval '1 minute'
LEFT JOIN LATERAL (
    SELECT count(*) AS trades,
           (array_agg(t.price ORDER BY t.ts, t.trade_seq))[1] AS open,
           max(t.price) AS high, min(t.price) AS low,
           (array_agg(t.price ORDER BY t.ts DESC, t.trade_seq DESC))[1] AS close,
           sum(CASE WHEN i.kind = 'option' OR i.instrument_type = 'linear' THEN t.amount ELSE t.amount / t.price END)
               AS volume,
           sum(CASE WHEN i.kind = 'option' OR i.instrument_type = 'linear' THEN t.amount * t.price ELSE t.amount END)
               AS cost
      FROM deribit.trades t
     WHERE t.instrument_name = i.instrument_name AND t.ts >= c.ts AND t.ts < c.ts + interval '1 minute'
) a ON true
WHERE tv.dataset = 'trades'
  -- the candles' settled coverage holds the minute, in one record or across the boundary of two (the collector's
  -- candle windows start where the previous plan ended, mid-minute)
  AND (SELECT range_agg(tstzrange(lower(v.fetched),
                                   greatest(lower(v.fetched), least(upper(v.fetched), v.final_until))))
         FROM deribit_ts.coverage v
        WHERE v.dataset = 'candles' AND v.key = i.instrument_name
          AND v.fetched && tstzrange(c.ts, c.ts + interval '1 minute'))
      @> tstzrange(c.ts, c.ts + interval '1 minute')
  AND (CASE WHEN a.trades = 0 THEN c.volume <> 0 OR c.cost <> 0
            ELSE c.open <> a.open OR c.high <> a.high OR c.low <> a.low OR c.close <> a.close
                 OR abs(c.volume - a.volume) > 1e-8 + 1e-9 * abs(c.volume)
                 OR abs(c.cost - a.cost) > 1e-8 + 1e-9 * abs(c.cost) END);

-- Every rule, judged on the stored rows: what deribit_ts.refresh_sanity stores, and what the view judges on read
-- for the candles newer than the last refresh.
CREATE OR REPLACE VIEW deribit_ts.sanity_judged AS
SELECT v.instrument_id, v.instrument_name, v.ts, v.rule, v.detail
FROM deribit_ts.candle_rule_violations v
UNION ALL
SELECT m.instrument_id, m.instrument_name, m.ts, 'candle_trades_mismatch'::text, m.detail
FROM deribit_ts.candle_trades_mismatch m;

-- The findings are kept (deribit_ts.sanity_found, migration 0044): judging every candle on read took minutes at
-- full history. deribit_ts.refresh_sanity() (`deribit-ts refresh`, the end of every backfill) stores what the
-- candles before its start break; the view adds the candles since, judged on read, so it is exact for everything
-- written after the last refresh too. What a refresh judges again:
--   * the tail: every candle from a day before the previous refresh's bound (a candle judged then may have had no
--     next close yet) up to the new bound, the start of the current minute (the forming minute stays on read);
--   * every older day whose aggregate changed: the day's candles_1d row (count, open, high, low, close, volume,
--     cost) and its trade count and volume (trade_days), against what deribit_ts.sanity_days kept when it was
--     judged (migration 0045). So a late window, a re-load of old history, candles written by hand or trades
--     fetched for old candles are judged again, whoever wrote them, on either edition, and the candles of unchanged
--     days are never read. A changed day is judged with its neighbours: the spike rule looks back a day and a
--     candle's close is judged by the next one.
-- A change that leaves a day's whole aggregate as it was (a candle's inner values changed, the day's extremes,
-- sums and count kept), or an instrument's changed listing, tick or expiry, is judged again by
-- `deribit-ts refresh --full`, which judges every candle.

-- The bound: candles before it are in deribit_ts.sanity_found. STABLE, so TimescaleDB excludes the older chunks
-- when the view's query starts (not per row).
CREATE OR REPLACE FUNCTION deribit_ts.sanity_checked_until()
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT s.checked_until FROM deribit_ts.sanity_state s), '-infinity'::timestamptz)
$$;

-- Each instrument-day's aggregate as the findings would be judged on now (days before p_bound). On the Apache
-- edition the daily rollup aggregates the days not yet refreshed on read (slow when they are many): `deribit-ts
-- refresh` and the backfill refresh the rollups first.
CREATE OR REPLACE FUNCTION deribit_ts.sanity_day_signatures(p_bound timestamptz)
RETURNS SETOF deribit_ts.sanity_days
STABLE LANGUAGE sql AS $$
    SELECT d.instrument_id, d.ts, d.candles, d.open, d.high, d.low, d.close, d.volume, d.cost, t.trades, t.volume
      FROM deribit.candles_1d d
      JOIN deribit.instruments i ON i.id = d.instrument_id
      LEFT JOIN deribit_ts.trade_days t ON t.instrument_name = i.instrument_name AND t.day = (d.ts AT TIME ZONE 'UTC')::date
     WHERE d.ts < p_bound
$$;

-- Two sums of one day's values are the same within a relative 1e-12: the rollups may add a day's minutes in
-- another order (a continuous aggregate materialized again), which moves the last bits, while one contract more
-- or less moves a day's volume or cost far more than that.
CREATE OR REPLACE FUNCTION deribit_ts.sanity_same_sum(a double precision, b double precision)
RETURNS boolean
IMMUTABLE LANGUAGE sql AS $$
    SELECT a IS NOT DISTINCT FROM b OR abs(a - b) <= 1e-12 * greatest(abs(a), abs(b))
$$;

CREATE OR REPLACE FUNCTION deribit_ts.refresh_sanity(p_full boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    state deribit_ts.sanity_state;
    bound timestamptz := date_trunc('minute', now());
    tail_from timestamptz;
    span record;
    spans integer := 0;
    days integer := 0;
    stored bigint := 0;
    n bigint;
    insert_sql constant text := 'INSERT INTO deribit_ts.sanity_found (instrument_id, ts, rule, detail)
                                 SELECT instrument_id, ts, rule, detail FROM deribit_ts.sanity_judged
                                  WHERE ts >= %L AND ts < %L';
BEGIN
    -- one refresh at a time: two would each judge and store the same candles
    PERFORM pg_advisory_xact_lock(hashtext('deribit_ts.refresh_sanity'));
    SELECT * INTO state FROM deribit_ts.sanity_state;
    IF p_full OR state IS NULL THEN
        TRUNCATE deribit_ts.sanity_found, deribit_ts.sanity_days;
        EXECUTE format(insert_sql, '-infinity'::timestamptz, bound);
        GET DIAGNOSTICS stored = ROW_COUNT;
        INSERT INTO deribit_ts.sanity_days SELECT * FROM deribit_ts.sanity_day_signatures(bound);
        GET DIAGNOSTICS days = ROW_COUNT;
    ELSE
        tail_from := least(state.checked_until, bound) - interval '1 day';
        CREATE TEMP TABLE IF NOT EXISTS sanity_changed_days (LIKE deribit_ts.sanity_days) ON COMMIT DROP;
        -- the days whose aggregate differs from the one judged (new, changed or gone)
        INSERT INTO sanity_changed_days
        SELECT coalesce(now_d.instrument_id, kept.instrument_id), coalesce(now_d.day, kept.day), now_d.candles,
               now_d.open, now_d.high, now_d.low, now_d.close, now_d.volume, now_d.cost, now_d.trades,
               now_d.trade_volume
          FROM deribit_ts.sanity_day_signatures(bound) now_d
          FULL JOIN deribit_ts.sanity_days kept ON kept.instrument_id = now_d.instrument_id AND kept.day = now_d.day
         WHERE (now_d.candles, now_d.open, now_d.high, now_d.low, now_d.close, now_d.trades)
               IS DISTINCT FROM (kept.candles, kept.open, kept.high, kept.low, kept.close, kept.trades)
            OR NOT deribit_ts.sanity_same_sum(now_d.volume, kept.volume)
            OR NOT deribit_ts.sanity_same_sum(now_d.cost, kept.cost)
            OR NOT deribit_ts.sanity_same_sum(now_d.trade_volume, kept.trade_volume);
        GET DIAGNOSTICS days = ROW_COUNT;
        -- judged again with a day each side, older than the tail (which is judged whole below), merged per instrument
        FOR span IN
            SELECT c.instrument_id, w.span
              FROM (SELECT instrument_id,
                           range_agg(tstzrange(day - interval '1 day', day + interval '2 days')) AS spans
                      FROM sanity_changed_days WHERE day - interval '1 day' < tail_from GROUP BY instrument_id) c
             CROSS JOIN LATERAL unnest(c.spans * tstzmultirange(tstzrange(NULL, tail_from))) AS w (span)
        LOOP
            EXECUTE format('DELETE FROM deribit_ts.sanity_found WHERE instrument_id = %s AND ts >= %L AND ts < %L',
                           span.instrument_id, lower(span.span), upper(span.span));
            EXECUTE format(insert_sql || ' AND instrument_id = %s', lower(span.span), upper(span.span),
                           span.instrument_id);
            GET DIAGNOSTICS n = ROW_COUNT;
            stored := stored + n;
            spans := spans + 1;
        END LOOP;
        DELETE FROM deribit_ts.sanity_found WHERE ts >= tail_from;
        EXECUTE format(insert_sql, tail_from, bound);
        GET DIAGNOSTICS n = ROW_COUNT;
        stored := stored + n;
        DELETE FROM deribit_ts.sanity_days k USING sanity_changed_days c
         WHERE k.instrument_id = c.instrument_id AND k.day = c.day;
        INSERT INTO deribit_ts.sanity_days SELECT * FROM sanity_changed_days WHERE candles IS NOT NULL;
        DROP TABLE sanity_changed_days;
    END IF;
    INSERT INTO deribit_ts.sanity_state (singleton, checked_until, refreshed_at) VALUES (true, bound, now())
        ON CONFLICT (singleton) DO UPDATE SET checked_until = excluded.checked_until,
                                              refreshed_at = excluded.refreshed_at;
    RETURN jsonb_build_object('full', p_full OR state IS NULL, 'checked_until', bound, 'tail_from', tail_from,
                              'days_changed', days, 'spans', spans, 'violations_stored', stored,
                              'seconds', round(extract(epoch FROM clock_timestamp() - started)::numeric, 3));
END;
$$;

CREATE OR REPLACE VIEW deribit.sanity_violations AS
SELECT 'candles'::text AS dataset, i.instrument_name, f.ts, f.rule, f.detail
FROM deribit_ts.sanity_found f
JOIN deribit.instruments i ON i.id = f.instrument_id
UNION ALL
-- the candles written since the last refresh (all of them before the first), judged on read
SELECT 'candles'::text, v.instrument_name, v.ts, v.rule, v.detail
FROM deribit_ts.sanity_judged v
WHERE v.ts >= deribit_ts.sanity_checked_until();
