"""Every relation a researcher reads in schema deribit says what a row is, and every column its unit and convention
(COMMENTs, sql/90_comments.sql): `\\d+ deribit.basis_1m` tells a newcomer everything."""

from __future__ import annotations

import psycopg

# Tables, views, materialized views, partitioned and foreign tables; a continuous aggregate's user view is a view.
UNDOCUMENTED = """
SELECT format('%s %I.%I', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'm' THEN 'materialized view' ELSE 'view' END,
              n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'deribit' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
   AND coalesce(btrim(obj_description(c.oid, 'pg_class')), '') = ''
UNION ALL
SELECT format('column %I.%I.%I', n.nspname, c.relname, a.attname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'deribit' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
   AND coalesce(btrim(col_description(c.oid, a.attnum)), '') = ''
UNION ALL
SELECT format('function %s', p.oid::regprocedure)
  FROM pg_proc p
 WHERE p.pronamespace = 'deribit'::regnamespace AND coalesce(btrim(obj_description(p.oid, 'pg_proc')), '') = ''
ORDER BY 1
"""


def undocumented(conn: psycopg.Connection) -> list[str]:
    return [name for (name,) in conn.execute(UNDOCUMENTED)]


def test_every_relation_and_column_of_schema_deribit_has_a_comment(db):
    with psycopg.connect(db) as conn:
        relations = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'deribit'::regnamespace AND relkind IN ('r', 'v', 'm')"
        ).fetchone()[0]
        assert relations >= 30  # the check sees the schema's tables and views
        assert undocumented(conn) == [], "add their COMMENTs to sql/90_comments.sql"


def test_the_check_catches_a_relation_or_column_without_a_comment(db):
    with psycopg.connect(db) as conn:
        conn.execute("CREATE VIEW deribit.zz_undocumented AS SELECT 1 AS one")
        conn.execute("COMMENT ON COLUMN deribit.ohlcv_1m.close IS NULL")
        assert undocumented(conn) == [
            "column deribit.ohlcv_1m.close",
            "column deribit.zz_undocumented.one",
            "view deribit.zz_undocumented",
        ]
        conn.rollback()
