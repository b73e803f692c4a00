-- Data quality in SQL: where rows are missing and why (deribit.gap_report), which stored rows cannot be right
-- (deribit.sanity_violations). Both are views built so that a filter on instrument_name (and, for the sanity
-- rules, on ts) reaches the base tables: a per-instrument report reads that instrument's rows only.
--
-- The views read tables and functions only (no other view), so re-applying an earlier file never drops them.

-- ---------------------------------------------------------------------------------------------------------------
-- Gaps
-- ---------------------------------------------------------------------------------------------------------------

-- Where `p_instrument_id` has no row, as ranges: before its first row, after its last (the ends reach to
-- infinity), and every hole between two rows more than `p_step` apart. One ordered pass over the primary key
-- (instrument_id, ts) with lag(); only the holes leave the window, so the aggregate stays small.
CREATE OR REPLACE FUNCTION deribit_ts.row_holes(p_dataset text, p_instrument_id integer)
RETURNS tstzmultirange
LANGUAGE plpgsql STABLE AS $$
DECLARE
    holes tstzmultirange;
BEGIN
    IF p_dataset = 'candles' THEN
        SELECT coalesce(range_agg(tstzrange(prev_ts + interval '1 minute', ts)), '{}')
          INTO holes
          FROM (SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev_ts
                  FROM deribit.candles_1m WHERE instrument_id = p_instrument_id) s
         WHERE ts - prev_ts > interval '1 minute';
        RETURN holes
            + tstzmultirange(tstzrange(NULL, (SELECT min(ts) FROM deribit.candles_1m
                                               WHERE instrument_id = p_instrument_id)))
            + tstzmultirange(tstzrange((SELECT max(ts) FROM deribit.candles_1m
                                         WHERE instrument_id = p_instrument_id) + interval '1 minute', NULL));
    ELSIF p_dataset = 'funding' THEN
        SELECT coalesce(range_agg(tstzrange(prev_ts + interval '1 hour', ts)), '{}')
          INTO holes
          FROM (SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev_ts
                  FROM deribit.funding_rate_history WHERE instrument_id = p_instrument_id) s
         WHERE ts - prev_ts > interval '1 hour';
        RETURN holes
            + tstzmultirange(tstzrange(NULL, (SELECT min(ts) FROM deribit.funding_rate_history
                                               WHERE instrument_id = p_instrument_id)))
            + tstzmultirange(tstzrange((SELECT max(ts) FROM deribit.funding_rate_history
                                         WHERE instrument_id = p_instrument_id) + interval '1 hour', NULL));
    END IF;
    RETURN NULL;
END;
$$;

-- The gaps of one (dataset, key): what was wanted and is not stored, split by whether it was ever fetched.
-- Minutes the exchange answered with a row (zero-volume filler candles included) are stored, so never gaps.
-- Option fillers are not stored: their minutes are in the coverage records' `filled` (options backfill), and
-- are no gaps either. (`filled` is read only where the column exists, so this file does not depend on it.)
CREATE OR REPLACE FUNCTION deribit_ts.gaps_of(p_dataset text, p_key text, p_instrument_id integer,
                                              p_wanted tstzmultirange)
RETURNS TABLE (gap tstzrange, cause text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    missing tstzmultirange := p_wanted * deribit_ts.row_holes(p_dataset, p_instrument_id);
    fetched tstzmultirange;
    filled tstzmultirange := '{}';
BEGIN
    IF missing IS NULL OR isempty(missing) THEN
        RETURN;
    END IF;
    SELECT coalesce(range_agg(c.fetched), '{}') INTO fetched
      FROM deribit_ts.coverage c WHERE c.dataset = p_dataset AND c.key = p_key;
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = 'deribit_ts.coverage'::regclass AND attname = 'filled' AND NOT attisdropped) THEN
        EXECUTE 'SELECT coalesce(range_agg(f), ''{}'') FROM deribit_ts.coverage c, unnest(c.filled) f
                  WHERE c.dataset = $1 AND c.key = $2'
           INTO filled USING p_dataset, p_key;
        missing := missing - filled;
    END IF;
    RETURN QUERY
        SELECT g, 'not_fetched' FROM unnest(missing - fetched) AS g
        UNION ALL
        SELECT g, 'exchange_empty' FROM unnest(missing * fetched) AS g;
END;
$$;

DROP VIEW IF EXISTS deribit.gap_report CASCADE;
CREATE VIEW deribit.gap_report AS
SELECT t.dataset,
       t.key                                                           AS instrument_name,
       lower(g.gap)                                                    AS gap_start,
       upper(g.gap)                                                    AS gap_end,
       (extract(epoch FROM upper(g.gap) - lower(g.gap)) / 60)::bigint  AS missing_minutes,
       g.cause
FROM deribit_ts.targets t
JOIN deribit.instruments i ON i.instrument_name = t.key
CROSS JOIN LATERAL deribit_ts.gaps_of(t.dataset, t.key, i.id, t.wanted) g
WHERE t.dataset IN ('candles', 'funding');
COMMENT ON VIEW deribit.gap_report IS
    'Every maximal run of missing rows inside what was asked for (deribit_ts.targets), [gap_start, gap_end): cause not_fetched (never fetched) or exchange_empty (fetched, the exchange had no row). Candles and funding; filler candles are rows, not gaps. Filter on instrument_name to read one instrument only.';

-- ---------------------------------------------------------------------------------------------------------------
-- Sanity rules
-- ---------------------------------------------------------------------------------------------------------------

-- The spike rule. A bad tick is a trade far from where the market is, that the market does not follow: the wick
-- of a candle (high above its open/close, low below) or a close that the next minute gives back. "Far" is
-- measured against the instrument's own recent range, so one rule fits BTC at 60,000 USD in a calm week and an
-- option at 0.0155 BTC: the typical range is the mean high-low of the previous 60 traded minutes (within a day),
-- with the widest of them left out, so one earlier bad tick does not hide the next. A move is a spike when it
-- exceeds 10 times that typical range: an honest one-minute wick is a fraction of a few typical ranges (the
-- simulator's are at most 1.5 minute-sigma), while the bad ticks reported in Deribit's chart data are 100 USD and
-- more (../shared/peers.md [DB-i1]) and freqtrade warns at a 10 % jump. A true jump of the market (a body that
-- stays where it went) is no spike: the close rule needs the next close to give back at least half of the move.
-- With fewer than 10 traded minutes of history there is no judgement. Only candles whose wick or body is at least
-- 0.5 % of the price and two ticks are judged: the look-back costs an index probe per candle judged, and at 0.5 %
-- that is about one candle in 5,000 of the simulator's BTC history (at 0.2 %, one in 30, and a full report 100
-- times slower). Smaller moves are not reported as bad ticks, whatever the recent range: Deribit's reported bad
-- ticks (100 USD and more at 6,000-20,000 USD) are 0.5-1.7 %.
DROP VIEW IF EXISTS deribit.sanity_violations CASCADE;
CREATE VIEW deribit.sanity_violations AS
SELECT 'candles'::text AS dataset, i.instrument_name, c.ts, v.rule, v.detail
FROM deribit.candles_1m c
JOIN deribit.instruments i ON i.id = c.instrument_id
CROSS JOIN LATERAL (
    SELECT greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low, abs(c.close - c.open))
           > greatest(0.005 * abs(c.close), 2 * coalesce(i.tick_size, 0)) AS candidate
) k
LEFT JOIN LATERAL (
    SELECT (sum(r.range) - max(r.range)) / nullif(count(*) - 1, 0) AS typical, count(*) AS minutes
      FROM (SELECT p.high - p.low AS range
              FROM deribit.candles_1m p
             WHERE k.candidate AND p.instrument_id = c.instrument_id
               AND p.ts < c.ts AND p.ts >= c.ts - interval '1 day' AND p.volume > 0
             ORDER BY p.ts DESC
             LIMIT 60) r
) recent ON k.candidate
LEFT JOIN LATERAL (
    SELECT n.close
      FROM deribit.candles_1m n
     WHERE k.candidate AND n.instrument_id = c.instrument_id AND n.ts > c.ts AND n.ts < c.ts + interval '1 day'
     ORDER BY n.ts
     LIMIT 1
) after ON k.candidate
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
    SELECT 'spike', format('%s %s is %s beyond the body: %s times the typical range %s of the previous %s traded '
                           'minutes', m.what, m.price, m.size, round((m.size / recent.typical)::numeric, 1),
                           round(recent.typical::numeric, 8), recent.minutes)
      FROM (VALUES ('high', c.high, c.high - greatest(c.open, c.close), true),
                   ('low', c.low, least(c.open, c.close) - c.low, true),
                   -- a close counts only if the next close gives back at least half of the move
                   ('close', c.close, abs(c.close - c.open), abs(after.close - c.open) <= abs(c.close - c.open) / 2)
           ) AS m (what, price, size, reverted)
     WHERE k.candidate AND recent.minutes >= 10 AND recent.typical > 0 AND m.reverted
       AND m.size > 10 * recent.typical
) v
-- Only rows that can break a rule reach the checks: the scan stays a filter over the table.
WHERE c.high < greatest(c.open, c.close) OR c.low > least(c.open, c.close) OR c.high < c.low
   OR least(c.open, c.high, c.low, c.close) <= 0 OR c.volume < 0 OR c.cost < 0
   OR (c.volume > 0) <> (c.cost > 0)
   OR c.ts < date_trunc('minute', i.creation_ts) OR c.ts >= i.expiry
   OR c.ts <> date_trunc('minute', c.ts)
   OR greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low, abs(c.close - c.open))
      > greatest(0.005 * abs(c.close), 2 * coalesce(i.tick_size, 0));
COMMENT ON VIEW deribit.sanity_violations IS
    'Candles that break a sanity rule (rule names are stable): OHLC order, non-positive prices, negative or one-sided volume/cost, outside the instrument''s listing-to-expiry life, off the minute grid, and spikes (a wick, or a close the next minute gives back, beyond 10 times the mean range of the previous 60 traded minutes). Filter on instrument_name and ts to read only those rows.';
