-- Loading rows into a table (deribit_ts/ingest/load.py): {target} is the table, {columns} its columns in COPY
-- order, {key} its natural key, {staging} the session's staging table for it.

-- name: copy_in
-- Binary COPY of rows into {target} (the table, or its staging table).
COPY {target} ({columns}) FROM STDIN WITH (FORMAT binary);

-- name: staging
-- The staging table of an upsert: lives for the session and empties itself at every commit.
CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: upsert
-- The staged rows into {target}: new ones inserted, stored ones overwritten only when a value differs
-- ({changed}, with the table's own extra condition), so re-loading the same data changes nothing. A row per row
-- written: true for a new one, false for a revision.
INSERT INTO {target} AS t ({columns})
SELECT DISTINCT ON ({key}) {columns} FROM {staging}
    ON CONFLICT ({key}) DO UPDATE SET {assignments} WHERE {changed}
RETURNING (xmax = 0) AS inserted;

-- name: truncate
TRUNCATE {staging};
