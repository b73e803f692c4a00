-- Queries of `deribit-ts report` (deribit_ts/report/data.py), one or more per section.
-- Parameters common to all: %(since)s, %(until)s (timestamptz or NULL), %(currency)s (upper case or NULL),
-- %(instrument)s (a name or NULL). A currency is read off an instrument or index name:
-- upper(split_part(replace(name, '_', '-'), '-', 1)), so BTC-PERPETUAL, BTC_USDC-PERPETUAL and btc_usd are BTC.

-- name: relation_exists
-- Whether the relation %(relation)s (schema.name) exists in this database: a view an older schema lacks makes its
-- table "missing", not an error.
SELECT to_regclass(%(relation)s) IS NOT NULL;

-- name: columns_of
-- The columns relation %(name)s of schema %(schema)s has (older schemas lack some optional ones).
SELECT column_name FROM information_schema.columns WHERE table_schema = %(schema)s AND table_name = %(name)s;

-- name: coverage
-- Per dataset and key: the range asked for, rows stored, minutes never fetched. {extra} is the list of the
-- optional columns this database's deribit.coverage has (older schemas lack some), each followed by a comma.
SELECT dataset, key, wanted_from, wanted_until, {extra}
       rows, complete,
       (SELECT coalesce(sum(extract(epoch FROM upper(m) - lower(m))), 0) / 60 FROM unnest(missing) AS m)::bigint
           AS missing_minutes
  FROM deribit.coverage
 WHERE (%(instrument)s::text IS NULL OR key = %(instrument)s)
   AND (%(currency)s::text IS NULL OR upper(split_part(replace(key, '_', '-'), '-', 1)) = %(currency)s)
 ORDER BY dataset, key;

-- name: coverage_days
-- Per (dataset, key) and UTC day of the window: the share of the minutes asked for that have been fetched
-- (deribit_ts.coverage; fetched and empty counts as fetched: the gaps section tells those apart). Options are
-- grouped by expiry, so a chain of hundreds of strikes is one row. %(days)s: the window without --since.
WITH win AS (
    SELECT coalesce(%(until)s::timestamptz, max(upper(t.wanted))) AS until FROM deribit_ts.targets t
), span AS (
    SELECT coalesce(%(since)s::timestamptz,
                    date_trunc('day', win.until, 'UTC') - make_interval(days => %(days)s)) AS since,
           win.until
      FROM win
), wanted AS (
    SELECT t.dataset, t.key, t.wanted * tstzmultirange(tstzrange(span.since, span.until)) AS wanted
      FROM deribit_ts.targets t, span
     WHERE t.wanted && tstzrange(span.since, span.until)
       AND (%(instrument)s::text IS NULL OR t.key = %(instrument)s)
       AND (%(currency)s::text IS NULL OR upper(split_part(replace(t.key, '_', '-'), '-', 1)) = %(currency)s)
), done AS (
    SELECT w.dataset, w.key, w.wanted,
           w.wanted * coalesce((SELECT range_agg(c.fetched) FROM deribit_ts.coverage c
                                 WHERE c.dataset = w.dataset AND c.key = w.key), '{}'::tstzmultirange) AS fetched
      FROM wanted w
), cells AS (
    SELECT d.dataset,
           CASE WHEN d.key ~ '-[CP]$' THEN regexp_replace(d.key, '-[^-]+-[CP]$', '') || ' options' ELSE d.key END
               AS label,
           day,
           (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)
              FROM unnest(d.wanted * tstzmultirange(tstzrange(day, day + interval '24 hours'))) r) AS wanted_s,
           (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)
              FROM unnest(d.fetched * tstzmultirange(tstzrange(day, day + interval '24 hours'))) r) AS fetched_s
      FROM done d, span,
           generate_series(date_trunc('day', span.since, 'UTC'), span.until - interval '1 microsecond',
                           interval '24 hours') day
)
SELECT dataset, label, (day AT TIME ZONE 'UTC')::date AS day,
       round(100 * sum(fetched_s) / sum(wanted_s), 2)::float8 AS fetched_pct
  FROM cells
 WHERE wanted_s > 0
 GROUP BY dataset, label, day
 ORDER BY dataset, label, day;

-- name: gaps
-- Maximal runs of missing minutes inside what was asked for, overlapping the window.
SELECT dataset, instrument_name, gap_start, gap_end, missing_minutes, cause
  FROM deribit.gap_report
 WHERE (%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)
   AND (%(currency)s::text IS NULL OR upper(split_part(replace(instrument_name, '_', '-'), '-', 1)) = %(currency)s)
   AND (%(since)s::timestamptz IS NULL OR gap_end > %(since)s)
   AND (%(until)s::timestamptz IS NULL OR gap_start < %(until)s)
 ORDER BY dataset, instrument_name, gap_start;

-- name: sanity
-- Sanity rule violations inside the window.
SELECT dataset, instrument_name, ts, rule, detail
  FROM deribit.sanity_violations
 WHERE (%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)
   AND (%(currency)s::text IS NULL OR upper(split_part(replace(instrument_name, '_', '-'), '-', 1)) = %(currency)s)
   AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
 ORDER BY ts, dataset, instrument_name, rule;

-- name: newest_candle
-- The end of the newest candle coverage: the sanity section's default window ends there.
SELECT max(covered_until) FROM deribit_ts.watermarks WHERE dataset = 'candles';

-- name: basis_newest
-- The newest hour that has a term structure (as of --until). Looked for first in the week before the newest
-- index sample (the view then reads the index and funding histories of that week only, through their time
-- index), and over the whole history only when that week has none: the second branch of the UNION ALL runs only
-- when the first found no row.
(SELECT ts FROM deribit.basis_term_structure
  WHERE (%(currency)s::text IS NULL OR currency = %(currency)s)
    AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
    AND ts > (SELECT greatest(
                  (SELECT max(x.ts) FROM deribit.index_price_history x
                    WHERE %(until)s::timestamptz IS NULL OR x.ts < %(until)s),
                  (SELECT max(fr.ts) FROM deribit.funding_rate_history fr
                    WHERE %(until)s::timestamptz IS NULL OR fr.ts < %(until)s))) - interval '7 days'
  ORDER BY ts DESC LIMIT 1)
UNION ALL
(SELECT ts FROM deribit.basis_term_structure
  WHERE (%(currency)s::text IS NULL OR currency = %(currency)s)
    AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
  ORDER BY ts DESC LIMIT 1)
LIMIT 1;

-- name: basis_latest
-- The term structure at the hour %(newest)s.
SELECT currency, ts, instrument_name, expiry, round(days_to_expiry::numeric, 2)::float8 AS days_to_expiry,
       future_price, index_price, round(basis_pct::numeric, 4)::float8 AS basis_pct,
       round(annualized_basis_pct::numeric, 2)::float8 AS annualized_basis_pct, index_source
  FROM deribit.basis_term_structure
 WHERE ts = %(newest)s
   AND (%(currency)s::text IS NULL OR currency = %(currency)s)
   AND (%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)
 ORDER BY currency, expiry;

-- name: basis_snapshots
-- The same at the newest hour and a day, a week and a month before it: how the curve moved. Futures closer to
-- expiry than %(min_days)s days are left out: annualizing turns a few dollars of basis into hundreds of percent.
SELECT currency, ts, expiry, days_to_expiry, annualized_basis_pct, instrument_name
  FROM deribit.basis_term_structure
 WHERE (%(currency)s::text IS NULL OR currency = %(currency)s)
   AND ts IN (%(newest)s, %(newest)s - interval '1 day', %(newest)s - interval '7 days',
              %(newest)s - interval '30 days')
   AND annualized_basis_pct IS NOT NULL AND days_to_expiry >= %(min_days)s
 ORDER BY currency, ts DESC, expiry;

-- name: basis_history
-- Every live future's annualized basis over the window, once a day at 00:00 UTC: the term structure is
-- computed hour by hour, so a daily line over months costs as much as a few days of hourly points.
SELECT currency, ts, instrument_name, annualized_basis_pct
  FROM deribit.basis_term_structure
 WHERE (%(currency)s::text IS NULL OR currency = %(currency)s)
   AND (%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)
   AND ts > coalesce(%(since)s::timestamptz, %(newest)s - make_interval(days => %(days)s)) AND ts <= %(newest)s
   AND ts = date_trunc('day', ts, 'UTC')
   AND annualized_basis_pct IS NOT NULL AND days_to_expiry >= %(min_days)s
 ORDER BY currency, instrument_name, ts;

-- name: funding_series
-- Funding APR of each perpetual over the window (by default the %(days)s days before the newest rate).
WITH newest AS (
    SELECT coalesce(%(until)s::timestamptz, max(ts) + interval '1 microsecond') AS until
      FROM deribit.funding_rate_history
), rows AS (
    SELECT a.* FROM deribit.funding_apr a, newest
     WHERE (%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)
       AND (%(currency)s::text IS NULL
            OR upper(split_part(replace(instrument_name, '_', '-'), '-', 1)) = %(currency)s)
       AND a.ts < newest.until
       AND a.ts >= coalesce(%(since)s::timestamptz, newest.until - make_interval(days => %(days)s))
)
SELECT instrument_name, ts, apr, apr_1d, apr_7d FROM rows ORDER BY instrument_name, ts;

-- name: smile_rounds
-- The newest snapshot round of each currency (as of --until). {source} is deribit.option_snapshot_rounds (the
-- indexed way) where this database has it, else the smile's own view.
SELECT currency, max(ts) FROM {source}
 WHERE (%(currency)s::text IS NULL OR currency = %(currency)s)
   AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
 GROUP BY currency ORDER BY currency;

-- name: smile
-- The smile of one snapshot round: out-of-the-money options by expiry and strike.
SELECT currency, ts, expiry, strike, option_type, log_moneyness, mark_iv, delta
  FROM deribit.iv_smile WHERE currency = %(round_currency)s AND ts = %(round_ts)s
 ORDER BY expiry, strike;

-- name: iv_term_structure
-- The ATM IV term structure of one snapshot round.
SELECT currency, ts, expiry, days_to_expiry, atm_iv
  FROM deribit.iv_term_structure WHERE currency = %(round_currency)s AND ts = %(round_ts)s
 ORDER BY expiry;
