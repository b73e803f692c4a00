-- deribit-ts: edition=timescale
--
-- The trade tape on the columnstore (Community edition): segmented by instrument and ordered by time, the columns
-- of its key, so a query of one instrument's trades (and the key's check on a late insert) opens that
-- instrument's batches only. Chunks convert once older than the collector's revision window. The Apache edition
-- keeps row storage.
ALTER TABLE deribit.trades SET (
    timescaledb.enable_columnstore, timescaledb.segmentby = 'instrument_name', timescaledb.orderby = 'ts DESC');
CALL add_columnstore_policy('deribit.trades', after => INTERVAL '14 days');
