-- deribit-ts: edition=timescale
--
-- Compression (columnstore) on the Community edition. Segment by instrument and order by time, the
-- columns of each primary key (../shared/timescale.md 2.2). Chunks are converted once they are older
-- than the window the collector still revises, so routine late corrections never touch compressed data
-- (timescale.md 2.9). The Apache edition has no compression: its fallback is simply row storage.
ALTER TABLE deribit.candles_1m SET (
    timescaledb.enable_columnstore, timescaledb.segmentby = 'instrument_id', timescaledb.orderby = 'ts DESC');
CALL add_columnstore_policy('deribit.candles_1m', after => INTERVAL '14 days');

ALTER TABLE deribit.funding_rate_history SET (
    timescaledb.enable_columnstore, timescaledb.segmentby = 'instrument_id', timescaledb.orderby = 'ts DESC');
CALL add_columnstore_policy('deribit.funding_rate_history', after => INTERVAL '60 days');

ALTER TABLE deribit.index_price_history SET (
    timescaledb.enable_columnstore, timescaledb.segmentby = 'index_name', timescaledb.orderby = 'ts DESC');
CALL add_columnstore_policy('deribit.index_price_history', after => INTERVAL '60 days');

ALTER TABLE deribit.option_ticker_snapshots SET (
    timescaledb.enable_columnstore, timescaledb.segmentby = 'instrument_id', timescaledb.orderby = 'ts DESC');
CALL add_columnstore_policy('deribit.option_ticker_snapshots', after => INTERVAL '14 days');
