"""Export a view or one read-only query to Parquet, CSV or JSON lines, streamed at full precision.

The query is checked before it reaches the server: a VIEW must be a relation of schema `deribit`; `--sql` must
parse (sqlglot, PostgreSQL dialect) as exactly one SELECT with nothing that writes, locks or creates, and its bare
names of public views are qualified with `deribit`; `--where` must parse as one condition. Whatever passes still
runs in a READ ONLY transaction, so the server refuses any write the checks missed.

Rows are never all in memory: CSV comes from COPY (the server's own text of every value: floats printed
shortest-exact, numerics as stored), JSON lines and Parquet from a server-side cursor read in batches. The file is
written under a temporary name beside the target and renamed only when complete: a failure leaves nothing.

In a notebook::

    import pandas as pd
    from deribit_ts.export import export, arrow_table

    export(dsn, "ohlcv_1d", where="instrument_name = 'BTC-PERPETUAL'", out="d.parquet")
    df = pd.read_parquet("d.parquet")
    # or straight into memory (a small result):
    df = arrow_table(dsn, sql="select * from iv_constant_maturity where tenor_days = 30").to_pandas()
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import sqlglot
from psycopg import sql
from sqlglot import exp

from deribit_ts.db.connect import connect
from deribit_ts.db.queries import compose
from deribit_ts.db.queries import query as named
from deribit_ts.errors import UsageError
from deribit_ts.validate import shown

FORMATS = ("parquet", "csv", "jsonl")
BATCH_ROWS = 50_000  # rows per fetch from the server-side cursor (and per Parquet row group slice)

# Nodes that write, lock, create or change the session: refused anywhere in --sql or --where (the READ ONLY
# transaction refuses writes too; these give a clear message before the server is asked).
_FORBIDDEN = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Into,
    exp.Lock,
    exp.Set,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
)
# Functions that act on the server outside the query (signals, files, settings, locks, remote servers): a read-only
# transaction does not stop them. Matched by prefix, lower case.
_FORBIDDEN_FUNCTIONS = (
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_signal_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_read_",
    "pg_ls_",
    "pg_stat_file",
    "pg_file_",
    "pg_advisory",
    "pg_try_advisory",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_",
    "pg_drop_",
    "pg_log_",
    "pg_sleep",
    "pg_notify",
    "lo_",
    "dblink",
    "set_config",
    "query_to_xml",
    "query_to_json",
    "cursor_to_xml",
    "table_to_xml",
    "database_to_xml",
    "schema_to_xml",
)


@dataclass(frozen=True)
class Export:
    out: Path
    rows: int
    format: str
    query: str  # the query that ran (after qualification and filters)

    def as_dict(self) -> dict:
        return {"out": str(self.out), "rows": self.rows, "format": self.format, "query": self.query}


def _parse(text: str, what: str) -> list[exp.Expression | None]:
    try:
        return sqlglot.parse(text, read="postgres")
    except sqlglot.errors.SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UsageError(f"{what} does not parse as PostgreSQL: {first}") from None


def _refuse_side_effects(tree: exp.Expression, what: str) -> None:
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise UsageError(f"{what} may only read: {node.key.upper()} is not allowed (export runs one SELECT)")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name.startswith(_FORBIDDEN_FUNCTIONS):
                raise UsageError(f"{what} may not call {name}(): export only reads rows")


def check_select(text: str, public: set[str]) -> str:
    """`text` as one read-only SELECT (or set operation of SELECTs), bare names of public views qualified with
    `deribit`; refused in one line otherwise."""
    statements = [s for s in _parse(text, "--sql") if s is not None]
    if len(statements) != 1:
        raise UsageError(f"--sql must be exactly one SELECT statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise UsageError(f"--sql must be a SELECT, not {tree.key.upper()}")
    _refuse_side_effects(tree, "--sql")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if not table.args.get("db") and name in public and name not in ctes:
            table.set("db", exp.to_identifier("deribit"))
    return tree.sql(dialect="postgres")


def check_where(text: str) -> str:
    """One condition, as it would stand after WHERE: anything that would end the condition (a second statement,
    a closing parenthesis, ORDER BY, LIMIT ...) is refused."""
    statements = [s for s in _parse(f"SELECT 1 WHERE {text}", "--where") if s is not None]
    tree = statements[0] if len(statements) == 1 else None
    if (
        not isinstance(tree, exp.Select)
        or set(k for k, v in tree.args.items() if v) - {"expressions", "where"}
        or len(tree.expressions) != 1
    ):
        raise UsageError(f"--where {shown(text)} must be one condition (e.g. \"instrument_name = 'BTC-PERPETUAL'\")")
    _refuse_side_effects(tree, "--where")
    return tree.args["where"].this.sql(dialect="postgres")


def public_relations(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(named("export", "public_relations")).fetchall()
    return {r[0] for r in rows}


def _time_column(conn: psycopg.Connection, query: str) -> str:
    """The column --since/--until bound: `ts`, else `day`."""
    cur = conn.execute(compose("export", "columns", query=sql.SQL(query)))
    names = [c.name for c in cur.description or []]
    for candidate in ("ts", "day"):
        if candidate in names:
            return candidate
    raise UsageError("--since/--until bound a column named ts or day, and this query has neither: use --where")


def build_query(
    conn: psycopg.Connection,
    view: str | None = None,
    *,
    query: str | None = None,
    where: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """The checked query, every value in it a literal (COPY takes no parameters)."""
    if (view is None) == (query is None):
        raise UsageError("give either a VIEW or --sql QUERY (exactly one)")
    public = public_relations(conn)
    if view is not None:
        name = view.strip().lower().removeprefix("deribit.")
        if name not in public:
            raise UsageError(f"{shown(view)} is not a view of schema deribit (`\\dv deribit.*` in psql lists them)")
        base = compose("export", "view", view=sql.Identifier("deribit", name)).as_string(conn)
    else:
        base = check_select(query, public)
    conditions: list[sql.Composable] = []
    if where is not None:
        conditions.append(sql.SQL("({})").format(sql.SQL(check_where(where))))
    if since is not None or until is not None:
        column = sql.Identifier(_time_column(conn, base))
        if since is not None:
            conditions.append(sql.SQL("q.{} >= {}").format(column, sql.Literal(since)))
        if until is not None:
            conditions.append(sql.SQL("q.{} < {}").format(column, sql.Literal(until)))
    if not conditions:
        return base
    return compose("export", "bounded", query=sql.SQL(base), conditions=sql.SQL(" AND ").join(conditions)).as_string(
        conn
    )


def _read_only(conn: psycopg.Connection) -> None:
    conn.execute(named("export", "read_only"))
    conn.execute(named("export", "utc"))  # the same instants in every format, whatever the server's time zone


def _batches(conn: psycopg.Connection, query: str) -> Iterator[tuple[list, list[tuple]]]:
    """(description, rows) per batch from a server-side cursor (memory stays one batch); one empty batch for an
    empty result, so the columns are known."""
    with conn.cursor(name="deribit_ts_export") as cur:
        cur.itersize = BATCH_ROWS
        cur.execute(query)
        while True:
            rows = cur.fetchmany(BATCH_ROWS)
            if cur.description is None:
                return
            yield cur.description, rows
            if len(rows) < BATCH_ROWS:
                return


def _write_csv(conn: psycopg.Connection, query: str, path: Path) -> int:
    with conn.cursor() as cur, open(path, "wb") as out:
        with cur.copy(compose("export", "csv", query=sql.SQL(query))) as stream:
            for chunk in stream:
                out.write(chunk)
        return cur.rowcount


def _jsonable(value):
    if isinstance(value, float):
        return value  # json writes repr(): the shortest text that reads back to the same double
    if isinstance(value, Decimal):
        return str(value)  # exact: a JSON number would go through a double on most readers
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str | list | dict):
        return value
    return str(value)


def _write_jsonl(conn: psycopg.Connection, query: str, path: Path) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8") as out:
        for description, batch in _batches(conn, query):
            names = [c.name for c in description]
            for row in batch:
                record = dict(zip(names, (_jsonable(v) for v in row), strict=True))
                out.write(json.dumps(record, ensure_ascii=False, allow_nan=True) + "\n")
            rows += len(batch)
    return rows


def _arrow_schema(conn: psycopg.Connection, description):
    import pyarrow as pa

    by_oid = {
        "bool": pa.bool_(),
        "int2": pa.int16(),
        "int4": pa.int32(),
        "int8": pa.int64(),
        "float4": pa.float32(),
        "float8": pa.float64(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
        "interval": pa.duration("us"),
    }
    fields = []
    for column in description:
        info = conn.adapters.types.get(column.type_code)
        type_name = info.name if info else "text"
        if type_name == "numeric":
            # A declared precision keeps every digit as a decimal; an unconstrained numeric (e.g. a division
            # of extracted epochs) becomes a double, what a notebook computes with anyway.
            precision, scale = column.precision, column.scale
            if precision and precision <= 38:
                arrow = pa.decimal128(precision, scale or 0)
            else:
                arrow = pa.float64()
        else:
            arrow = by_oid.get(type_name, pa.string())
        fields.append(pa.field(column.name, arrow))
    return pa.schema(fields)


def _text(value) -> str | None:
    """A value of a type without an Arrow counterpart (json, arrays, ranges, ...) as text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _arrow_column(values: list, arrow_type):
    import pyarrow as pa

    if pa.types.is_floating(arrow_type):
        values = [None if v is None else float(v) for v in values]
    elif pa.types.is_string(arrow_type):
        values = [_text(v) for v in values]
    return pa.array(values, type=arrow_type)


def _record_batches(conn: psycopg.Connection, query: str) -> Iterator:
    import pyarrow as pa

    schema = None
    for description, batch in _batches(conn, query):
        if schema is None:
            schema = _arrow_schema(conn, description)
            yield schema
        columns = list(zip(*batch, strict=True)) if batch else [[] for _ in schema]
        yield pa.RecordBatch.from_arrays(
            [_arrow_column(list(c), f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
        )


def _write_parquet(conn: psycopg.Connection, query: str, path: Path) -> int:
    import pyarrow.parquet as pq

    rows = 0
    batches = _record_batches(conn, query)
    schema = next(batches)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


_WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export(
    dsn: str,
    view: str | None = None,
    *,
    sql: str | None = None,
    where: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    format: str = "parquet",
    out: str | os.PathLike,
) -> Export:
    """Write VIEW (a relation of schema deribit, e.g. "ohlcv_1d") or the read-only query `sql` to `out`, filtered
    by `where` (one condition) and by --since (inclusive) / --until (exclusive) on its ts (or day) column."""
    if format not in FORMATS:
        raise UsageError(f"--format {shown(format)} is not one of {', '.join(FORMATS)}")
    target = Path(out)
    if target.is_dir():
        raise UsageError(f"--out {shown(str(target))} is a directory: give a file name")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"--out: the directory {shown(str(directory))} does not exist")
    with connect(dsn, application_name="deribit-ts export") as conn, conn.transaction():
        _read_only(conn)
        query = build_query(conn, view, query=sql, where=where, since=since, until=until)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
        os.close(fd)
        try:
            rows = _WRITERS[format](conn, query, Path(temporary))
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the file gets the usual mode
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return Export(target, rows, format, query)


def arrow_table(
    dsn: str,
    view: str | None = None,
    *,
    sql: str | None = None,
    where: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
):
    """The rows as a pyarrow Table (call .to_pandas() for a DataFrame), with the same checks as export(). Holds
    the whole result in memory: for big results export() to Parquet and read it back."""
    import pyarrow as pa

    with connect(dsn, application_name="deribit-ts export") as conn, conn.transaction():
        _read_only(conn)
        query = build_query(conn, view, query=sql, where=where, since=since, until=until)
        batches = _record_batches(conn, query)
        schema = next(batches)
        return pa.Table.from_batches(list(batches), schema=schema)
