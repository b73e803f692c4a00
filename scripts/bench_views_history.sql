-- A synthetic history with the shape of the simulator's `backfill all`, generated in SQL (minutes instead of the
-- hours the simulator's full backfill takes): used by scripts/bench_views.py. Parameters (psql-style variables
-- replaced by the script): :start and :now (the history's first day and its "now").
--
--   * BTC and ETH perpetuals trading every minute since :start, hourly funding, an hourly index (one-minute for the
--     last two days, as the exchange serves it);
--   * weekly futures (listed 14 days before their Friday 08:00 expiry) and quarterlies (listed 273 days before),
--     a candle every minute of their life (futures' fillers are stored rows), converging to the index;
--   * options: every Friday expiry from 30 days before :now to 180 days after, 10 strikes a side, each listed 56
--     days before expiry (or at :start), traded in about 2 % of its minutes, the rest answered with filler candles
--     recorded in coverage.filled (not stored) from its first trade on, nothing before it;
--   * targets and coverage as a backfill leaves them: one coverage record per 5,000-minute window (funding 744
--     hours, index 30 days), with the rows it holds.

SET LOCAL work_mem = '256MB';

-- The market's price path (USD): smooth and deterministic, a different level per currency.
CREATE FUNCTION pg_temp.spot(p_currency text, p_ts timestamptz) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_currency WHEN 'BTC' THEN 60000 ELSE 3000 END
           * (1 + 0.25 * sin(extract(epoch FROM p_ts) / 8e6) + 0.01 * sin(extract(epoch FROM p_ts) / 3e3))
$$;

INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, settlement_currency,
                                 price_index, creation_ts, expiry, tick_size, raw)
SELECT c || '-PERPETUAL', 'future', true, c, c, lower(c) || '_usd', :'start'::timestamptz, NULL, 0.5, '{}'
  FROM unnest(ARRAY['BTC', 'ETH']) c;

-- Fridays 08:00 UTC: weeklies live 14 days, the last Friday of each quarter's last month 273 days.
INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, settlement_currency,
                                 price_index, creation_ts, expiry, tick_size, raw)
SELECT DISTINCT ON (name) name, 'future', false, c, c, lower(c) || '_usd', expiry - life, expiry, 0.5, '{}'
  FROM (SELECT c, f + interval '8 hours' AS expiry,
               c || '-' || upper(to_char(f, 'FMDDMONYY')) AS name,
               CASE WHEN extract(month FROM f)::int % 3 = 0 AND extract(month FROM f + interval '7 days') <> extract(month FROM f)
                    THEN interval '273 days' ELSE interval '14 days' END AS life
          FROM unnest(ARRAY['BTC', 'ETH']) c,
               generate_series(date_trunc('week', :'start'::timestamptz) + interval '4 days',
                               :'now'::timestamptz + interval '280 days', interval '7 days') f) x
 WHERE expiry - life < :'now'::timestamptz AND expiry > :'start'::timestamptz + interval '14 days'
 ORDER BY name, life DESC;

INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, settlement_currency,
                                 price_index, creation_ts, expiry, strike, option_type, tick_size, raw)
SELECT c || '-' || upper(to_char(f, 'FMDDMONYY')) || '-' || k::bigint || '-' || upper(left(kind, 1)),
       'option', false, c, c, lower(c) || '_usd', greatest(f + interval '8 hours' - interval '56 days', :'start'::timestamptz),
       f + interval '8 hours', k, kind, 0.0001, '{}'
  FROM unnest(ARRAY['BTC', 'ETH']) c,
       generate_series(date_trunc('week', :'now'::timestamptz - interval '30 days') + interval '4 days',
                       :'now'::timestamptz + interval '180 days', interval '7 days') f,
       generate_series(-10, 9) s,
       LATERAL (SELECT round(pg_temp.spot(c, f) * (1 + 0.04 * s)) AS k) strike,
       unnest(ARRAY['call', 'put']) kind
 WHERE f + interval '8 hours' - interval '56 days' < :'now'::timestamptz;

-- Perpetuals and futures: a candle every minute of their life up to :now (the future at a basis that decays
-- to zero at expiry).
INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
SELECT i.id, m, o, greatest(o, p) * (1 + 0.0004 * random()), least(o, p) * (1 - 0.0004 * random()), p, v, v * p
  FROM deribit.instruments i,
       generate_series(greatest(i.creation_ts, :'start'::timestamptz),
                       least(i.expiry, :'now'::timestamptz) - interval '1 minute', interval '1 minute') m,
       LATERAL (SELECT pg_temp.spot(i.base_currency, m)
                       * (1 + CASE WHEN i.is_perpetual THEN 0.0003
                                   ELSE 0.08 * extract(epoch FROM i.expiry - m) / 31536000 END) AS p,
                       CASE WHEN random() < 0.5 THEN 0 ELSE 10 END AS v) price,
       LATERAL (SELECT price.p * (1 + 0.0002 * (random() - 0.5)) AS o) open_price
 WHERE i.kind = 'future';

-- Options: about 2 % of their minutes traded (at least one), the first of them some days after listing.
INSERT INTO deribit.candles_1m (instrument_id, ts, open, high, low, close, volume, cost)
SELECT DISTINCT ON (i.id, m) i.id, m, p, p * 1.01, p * 0.99, p, 0.1, 0.1 * p
  FROM deribit.instruments i,
       LATERAL (SELECT extract(epoch FROM least(i.expiry, :'now'::timestamptz) - i.creation_ts)::bigint / 60 AS life)
           l,
       generate_series(1, greatest(1, l.life / 50)) n,
       LATERAL (SELECT date_trunc('minute', i.creation_ts)
                       + (l.life / 10 + floor(random() * l.life * 0.9)::bigint) * interval '1 minute' AS m) t,
       LATERAL (SELECT round((0.01 + 0.005 * sin(extract(epoch FROM m) / 9e4))::numeric, 4)::float8 AS p) price
 WHERE i.kind = 'option' AND l.life > 0;

INSERT INTO deribit.funding_rate_history (instrument_id, ts, interest_1h, interest_8h, index_price, prev_index_price)
SELECT i.id, h, 1e-5 * (1 + sin(extract(epoch FROM h) / 1e6)), 8e-5, pg_temp.spot(i.base_currency, h),
       pg_temp.spot(i.base_currency, h - interval '1 hour')
  FROM deribit.instruments i, generate_series(:'start'::timestamptz, :'now'::timestamptz - interval '1 hour',
                                              interval '1 hour') h
 WHERE i.is_perpetual;

INSERT INTO deribit.index_price_history (index_name, ts, price, resolution)
SELECT lower(c) || '_usd', m, pg_temp.spot(c, m), r
  FROM unnest(ARRAY['BTC', 'ETH']) c,
       LATERAL (SELECT h, interval '1 hour' FROM generate_series(:'start'::timestamptz,
                       :'now'::timestamptz - interval '2 days 1 hour', interval '1 hour') h
                UNION ALL
                SELECT h, interval '1 minute' FROM generate_series(:'now'::timestamptz - interval '2 days',
                       :'now'::timestamptz - interval '1 minute', interval '1 minute') h) s (m, r);

-- What a backfill asked for and recorded.
INSERT INTO deribit_ts.targets (dataset, key, wanted)
SELECT 'candles', i.instrument_name,
       tstzmultirange(tstzrange(greatest(i.creation_ts, :'start'::timestamptz), least(i.expiry, :'now'::timestamptz)))
  FROM deribit.instruments i
UNION ALL
SELECT 'funding', i.instrument_name, tstzmultirange(tstzrange(:'start'::timestamptz, :'now'::timestamptz))
  FROM deribit.instruments i WHERE i.is_perpetual
UNION ALL
SELECT 'index', lower(c) || '_usd', tstzmultirange(tstzrange(:'start'::timestamptz, :'now'::timestamptz))
  FROM unnest(ARRAY['BTC', 'ETH']) c;

CREATE TEMP TABLE windows AS
SELECT t.dataset, t.key, i.id, i.kind, tstzrange(w, least(w + step, upper(t.wanted))) AS fetched
  FROM deribit_ts.targets t
  LEFT JOIN deribit.instruments i ON i.instrument_name = t.key,
       LATERAL (SELECT CASE t.dataset WHEN 'candles' THEN interval '5000 minutes' WHEN 'funding' THEN interval '744 hours'
                                      ELSE interval '30 days' END AS step) s,
       generate_series(lower(t.wanted), upper(t.wanted) - interval '1 minute', s.step) w;

INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, filled)
SELECT w.dataset, w.key, w.fetched,
       CASE w.dataset
           WHEN 'candles' THEN (SELECT count(*) FROM deribit.candles_1m c
                                 WHERE c.instrument_id = w.id AND c.ts >= lower(w.fetched) AND c.ts < upper(w.fetched))
           WHEN 'funding' THEN (SELECT count(*) FROM deribit.funding_rate_history f
                                 WHERE f.instrument_id = w.id AND f.ts >= lower(w.fetched) AND f.ts < upper(w.fetched))
           ELSE (SELECT count(*) FROM deribit.index_price_history x
                  WHERE x.index_name = w.key AND x.ts >= lower(w.fetched) AND x.ts < upper(w.fetched)) END,
       upper(w.fetched),
       CASE WHEN w.kind = 'option' THEN
           (SELECT nullif(tstzmultirange(tstzrange(greatest(lower(w.fetched), first.ts), upper(w.fetched)))
                          - coalesce(range_agg(tstzrange(c.ts, c.ts + interval '1 minute')), '{}'), '{}')
              FROM deribit.candles_1m c
             WHERE c.instrument_id = w.id AND c.ts >= lower(w.fetched) AND c.ts < upper(w.fetched))
       END
  FROM windows w
  LEFT JOIN LATERAL (SELECT min(c.ts) AS ts FROM deribit.candles_1m c WHERE c.instrument_id = w.id) first
    ON w.kind = 'option'
 WHERE w.kind IS DISTINCT FROM 'option' OR upper(w.fetched) > first.ts;
-- An option's windows before its first trade: the exchange answered nothing.
INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until)
SELECT w.dataset, w.key, w.fetched, 0, upper(w.fetched)
  FROM windows w
  JOIN LATERAL (SELECT min(c.ts) AS ts FROM deribit.candles_1m c WHERE c.instrument_id = w.id) first ON true
 WHERE w.kind = 'option' AND upper(w.fetched) <= first.ts;

INSERT INTO deribit_ts.watermarks (dataset, key, covered_until)
SELECT 'candles', key, max(upper(fetched)) FROM deribit_ts.coverage WHERE dataset = 'candles' GROUP BY key;
