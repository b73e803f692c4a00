-- The collector stores the trade tape itself (the trades its scans read), outside any backfill task: its writes to
-- deribit.trades and deribit_ts.trade_days are fenced like the rest of its tables (0026), so a leader that lost its
-- lease cannot commit a page of trades. Connections without a leader epoch (backfill runs, a person at psql) are
-- not affected: deribit_ts.check_leader_epoch returns at once for them.
--
-- deribit.trades is a hypertable: a statement trigger on it fires once per INSERT or COPY into it, whichever chunks
-- the rows go to (TimescaleDB keeps statement triggers on the hypertable and row triggers on its chunks).
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit.trades
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
CREATE TRIGGER leader_epoch BEFORE INSERT OR UPDATE OR DELETE ON deribit_ts.trade_days
    FOR EACH STATEMENT EXECUTE FUNCTION deribit_ts.check_leader_epoch();
