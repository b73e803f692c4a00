-- Coverage records no longer overlap (issue 9.5).
--
-- A range fetched twice (the settling tail of every run, fetched again by the next) used to leave two records
-- over it, and deribit.coverage.rows added both: 218,910 rows reported where 218,880 were stored. From now on
-- deribit_ts.record_coverage (sql/20_backfill.sql) cuts older records back where a newer fetch covers them; this
-- migration does the same once for the records already there: each record loses what newer records of its
-- (dataset, key) cover, and its rows are recounted on the table.
CREATE FUNCTION pg_temp.stored_rows(p_dataset text, p_key text, p_range tstzrange) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE p_dataset
        WHEN 'candles' THEN (SELECT count(*) FROM deribit.candles_1m c JOIN deribit.instruments i ON i.id = c.instrument_id
                              WHERE i.instrument_name = p_key AND c.ts >= lower(p_range) AND c.ts < upper(p_range))
        WHEN 'funding' THEN (SELECT count(*) FROM deribit.funding_rate_history f
                               JOIN deribit.instruments i ON i.id = f.instrument_id
                              WHERE i.instrument_name = p_key AND f.ts >= lower(p_range) AND f.ts < upper(p_range))
        WHEN 'index' THEN (SELECT count(*) FROM deribit.index_price_history p
                            WHERE p.index_name = p_key AND p.ts >= lower(p_range) AND p.ts < upper(p_range))
    END;
$$;

CREATE TEMP TABLE superseded AS
SELECT c.coverage_id, c.dataset, c.key, c.final_until, c.fetched_at, c.run_id, c.rolled_up_at,
       tstzmultirange(c.fetched) - range_agg(n.fetched) AS rest
  FROM deribit_ts.coverage c
  JOIN deribit_ts.coverage n
    ON n.dataset = c.dataset AND n.key = c.key AND n.coverage_id > c.coverage_id AND n.fetched && c.fetched
 WHERE c.dataset IN ('candles', 'funding', 'index')
 GROUP BY c.coverage_id;

DELETE FROM deribit_ts.coverage c USING superseded s WHERE c.coverage_id = s.coverage_id;

INSERT INTO deribit_ts.coverage (dataset, key, fetched, rows, final_until, fetched_at, run_id, rolled_up_at)
SELECT s.dataset, s.key, piece, pg_temp.stored_rows(s.dataset, s.key, piece), s.final_until, s.fetched_at, s.run_id,
       s.rolled_up_at
  FROM superseded s, unnest(s.rest) AS piece;

DROP TABLE superseded;
DROP FUNCTION pg_temp.stored_rows(text, text, tstzrange);

-- `backfill index` without --since asked for history from 2010, long before any Deribit index (issue 9.6): what
-- was wanted before the first stored point of an index is dropped from its target.
UPDATE deribit_ts.targets t
   SET wanted = t.wanted - tstzmultirange(tstzrange(NULL, f.first_ts)), updated_at = now()
  FROM (SELECT index_name, min(ts) AS first_ts FROM deribit.index_price_history GROUP BY index_name) f
 WHERE t.dataset = 'index' AND t.key = f.index_name AND lower(t.wanted) = '2010-01-01 00:00+00';
