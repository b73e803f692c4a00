-- Schemas and the TimescaleDB extension.
-- `deribit` holds the market data researchers query (hypertables, rollups, stable views);
-- `deribit_ts` holds the tool's own bookkeeping (migration ledger, plan, watermarks, run log).
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE SCHEMA IF NOT EXISTS deribit;
CREATE SCHEMA IF NOT EXISTS deribit_ts;

COMMENT ON SCHEMA deribit IS 'Deribit market data collected by deribit-ts: query the views (ohlcv_1m, funding_rates, index_prices, option_snapshots, ...)';
COMMENT ON SCHEMA deribit_ts IS 'deribit-ts bookkeeping: migrations, backfill plan, coverage, watermarks, run log';
