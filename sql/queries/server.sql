-- Queries about the server and the database we are connected to (deribit_ts/db/connect.py).

-- name: info
-- PostgreSQL's version, TimescaleDB's (NULL: not installed in this database) and its license: 'timescale',
-- 'apache', or NULL when the library is not loaded (timescaledb.license is set at server start only).
SELECT current_setting('server_version'),
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
       current_setting('timescaledb.license', true);

-- name: database_size
-- The current database's size on disk, in bytes.
SELECT pg_database_size(current_database());
