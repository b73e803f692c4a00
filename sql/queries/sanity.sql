-- Keeping deribit.sanity_violations' findings (deribit_ts/ingest/sanity.py).

-- name: refresh
-- Judge and store what changed since the last refresh (every candle with %(full)s); returns the summary as JSON.
SELECT deribit_ts.refresh_sanity(%(full)s);
