"""Loading rows into tables: binary COPY where no overlap is possible, staging plus upsert where it is.

An upsert changes a stored row only when a value differs, so re-loading the same data changes nothing,
and it reports how many rows were new and how many were revisions of rows already stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection, sql

from deribit_ts.db.queries import compose


@dataclass(frozen=True)
class Table:
    """A target table: its columns (in COPY order), their PostgreSQL types, and its natural key."""

    schema: str
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    key: tuple[str, ...]
    # Extra condition (SQL on `t` = stored row, `EXCLUDED` = new row) an update must also satisfy.
    update_only_if: str | None = None

    @property
    def ident(self) -> sql.Composed:
        return sql.Identifier(self.schema, self.name)

    @property
    def staging(self) -> sql.Identifier:
        return sql.Identifier(f"staging_{self.name}")


@dataclass
class LoadResult:
    inserted: int = 0
    revised: int = 0
    filled: list | None = None  # [from, until) runs of filler minutes answered but not stored (option candles)
    rows: int | None = None  # rows of the window kept in the table, when not every row answered is (None: all)


def _columns(names: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


async def copy_rows(conn: AsyncConnection, table: Table, rows: Sequence[Sequence], *, into=None) -> None:
    """Binary COPY of rows into `table` (or the given relation)."""
    statement = compose("load", "copy_in", target=into or table.ident, columns=_columns(table.columns))
    async with conn.cursor() as cur:
        async with cur.copy(statement) as copy:
            copy.set_types(list(table.types))
            for row in rows:
                await copy.write_row(row)


async def upsert_rows(conn: AsyncConnection, table: Table, rows: Sequence[Sequence]) -> LoadResult:
    """Insert new rows and overwrite changed ones, through a per-session staging table."""
    if not rows:
        return LoadResult()
    # ON COMMIT DELETE ROWS: the staging table empties itself at every commit and lives for the session.
    await conn.execute(compose("load", "staging", staging=table.staging, target=table.ident))
    await copy_rows(conn, table, rows, into=table.staging)
    values = [c for c in table.columns if c not in table.key]
    changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.Identifier("t", c) for c in values),
        sql.SQL(", ").join(sql.Identifier("excluded", c) for c in values),
    )
    if table.update_only_if:
        changed = sql.SQL("{} AND {}").format(changed, sql.SQL(table.update_only_if))
    statement = compose(
        "load",
        "upsert",
        target=table.ident,
        columns=_columns(table.columns),
        staging=table.staging,
        key=_columns(table.key),
        assignments=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in values),
        changed=changed,
    )
    result = LoadResult()
    async with conn.cursor() as cur:
        await cur.execute(statement)
        for (was_inserted,) in await cur.fetchall():
            if was_inserted:
                result.inserted += 1
            else:
                result.revised += 1
    await conn.execute(compose("load", "truncate", staging=table.staging))
    return result
