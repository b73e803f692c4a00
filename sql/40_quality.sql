-- Data quality in SQL: where rows are missing and why (deribit.gap_report), which stored rows cannot be right
-- (deribit.sanity_violations). Both are views built so that a filter on instrument_name (and, for the sanity
-- rules, on ts) reaches the base tables: a per-instrument report reads that instrument's rows only.
--
-- The views read tables and functions only (no other view).

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
CREATE OR REPLACE VIEW deribit_ts.trade_seq_holes AS
SELECT s.instrument_name, s.prev_ts AS gap_start, s.ts AS gap_end, s.trade_seq - s.prev_seq - 1 AS missing_trades
FROM (SELECT t.instrument_name, t.ts, t.trade_seq,
             lag(t.trade_seq) OVER w AS prev_seq, lag(t.ts) OVER w AS prev_ts
        FROM deribit.trades t
      WINDOW w AS (PARTITION BY t.instrument_name ORDER BY t.trade_seq)) s
WHERE s.trade_seq > s.prev_seq + 1
  AND EXISTS (SELECT 1
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
-- of a candle (high above its open/close, low below) or a close that the next minute gives back. "Far" is
-- measured against the instrument's own recent range, so one rule fits BTC at 60,000 USD in a calm week and an
-- option at 0.0155 BTC: the typical range is the mean high-low of the previous 60 traded minutes (within a day),
-- with the widest of them left out, so one earlier bad tick does not hide the next. A move is a spike when it
-- exceeds 10 times that typical range: an honest one-minute wick is a fraction of a few typical ranges (the
-- simulator's are at most 1.5 minute-sigma), while the bad ticks reported in Deribit's chart data are 100 USD and
-- more (as users of other Deribit downloaders report them) and freqtrade warns at a 10 % jump. A true jump of the market (a body that
-- stays where it went) is no spike: the close rule needs the next close to give back at least half of the move.
-- With fewer than 10 traded minutes of history there is no judgement. Only candles whose wick or body is at least
-- 0.5 % of the price and two ticks are judged: the look-back costs an index probe per candle judged, and at 0.5 %
-- that is about one candle in 5,000 of the simulator's BTC history (at 0.2 %, one in 30, and a full report 100
-- times slower). Smaller moves are not reported as bad ticks, whatever the recent range: Deribit's reported bad
-- ticks (100 USD and more at 6,000-20,000 USD) are 0.5-1.7 %.
-- The spike rule for one candle that is already suspect (see above): NULL when it is no spike. The look-back and the
-- next candle are read with their time bounds as constants (EXECUTE), so TimescaleDB picks the one or two chunks
-- they are in when planning; as parameters, every execution would test all chunks of the history again (15 ms a
-- candle over eight years of weekly chunks).
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

-- The candle_trades_mismatch rule: a stored candle that is not the aggregate of its minute's stored trades (open the
-- first price, high the highest, low the lowest, close the last, volume and cost the sums in the candle's units:
-- options and linear instruments count amount in the coin, inverse ones in USD), judged only where both are
-- complete for that minute: the trades' and the candles' coverage both hold the whole minute, settled. Prices must
-- be equal; volume and cost agree to the exchange's 8 decimals.
CREATE OR REPLACE VIEW deribit_ts.candle_trades_mismatch AS
SELECT i.instrument_name, c.ts,
       format('candle open %s high %s low %s close %s volume %s cost %s; its %s trades: %s %s %s %s %s %s',
              c.open, c.high, c.low, c.close, c.volume, c.cost, coalesce(a.trades, 0), a.open, a.high, a.low,
              a.close, round(a.volume::numeric, 8), round(a.cost::numeric, 8)) AS detail
FROM deribit.candles_1m c
JOIN deribit.instruments i ON i.id = c.instrument_id
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
WHERE EXISTS (SELECT 1 FROM deribit_ts.coverage v
               WHERE v.dataset = 'trades' AND v.key = i.instrument_name
                 AND v.fetched @> tstzrange(c.ts, c.ts + interval '1 minute') AND v.final_until >= c.ts + interval '1 minute')
  AND EXISTS (SELECT 1 FROM deribit_ts.coverage v
               WHERE v.dataset = 'candles' AND v.key = i.instrument_name
                 AND v.fetched @> tstzrange(c.ts, c.ts + interval '1 minute') AND v.final_until >= c.ts + interval '1 minute')
  AND (CASE WHEN a.trades = 0 THEN c.volume <> 0 OR c.cost <> 0
            ELSE c.open <> a.open OR c.high <> a.high OR c.low <> a.low OR c.close <> a.close
                 OR abs(c.volume - a.volume) > 1e-8 + 1e-9 * abs(c.volume)
                 OR abs(c.cost - a.cost) > 1e-8 + 1e-9 * abs(c.cost) END);

CREATE OR REPLACE VIEW deribit.sanity_violations AS
SELECT 'candles'::text AS dataset, i.instrument_name, c.ts, v.rule, v.detail
FROM deribit.candles_1m c
JOIN deribit.instruments i ON i.id = c.instrument_id
CROSS JOIN LATERAL (
    SELECT greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low, abs(c.close - c.open))
           > greatest(0.005 * abs(c.close), 2 * coalesce(i.tick_size, 0)) AS candidate,
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
      FROM deribit_ts.spike_detail(c.instrument_id, c.ts, c.open, c.high, c.low, c.close) AS d (detail)
     WHERE k.candidate AND NOT k.absurd AND d.detail IS NOT NULL
) v
-- Only rows that can break a rule reach the checks: the scan stays a filter over the table.
WHERE c.high < greatest(c.open, c.close) OR c.low > least(c.open, c.close) OR c.high < c.low
   OR least(c.open, c.high, c.low, c.close) <= 0 OR c.volume < 0 OR c.cost < 0
   OR (c.volume > 0) <> (c.cost > 0)
   OR c.ts < date_trunc('minute', i.creation_ts) OR c.ts >= i.expiry
   OR c.ts <> date_trunc('minute', c.ts)
   OR greatest(c.high - greatest(c.open, c.close), least(c.open, c.close) - c.low, abs(c.close - c.open))
      > greatest(0.005 * abs(c.close), 2 * coalesce(i.tick_size, 0))
   OR greatest(abs(c.open), abs(c.high), abs(c.low), abs(c.close)) > 1e12
   OR greatest(abs(c.volume), abs(c.cost)) > 1e15
UNION ALL
SELECT 'candles'::text, m.instrument_name, m.ts, 'candle_trades_mismatch'::text, m.detail
FROM deribit_ts.candle_trades_mismatch m;
