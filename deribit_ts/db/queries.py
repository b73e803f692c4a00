"""Named SQL queries: the SQL that Python runs lives in sql/queries/*.sql, one file per module or concept.

A file holds blocks, each opened by a line `-- name: query_name` (the pattern of procrastinate's queries.sql);
the comment lines right under it say what the query returns (they are not sent to the server, so they may
mention %(parameters)s). A file is read once per process:

    from deribit_ts.db.queries import query
    conn.execute(query("report", "gaps"), params)

Values are always passed as parameters (%(name)s). Where a query needs an identifier that varies (a view name,
an optional column), it writes `{placeholder}` and the caller composes it with psycopg.sql, never str.format:

    compose("report", "rounds", source=sql.Identifier("deribit", "iv_smile"))

(in such a query write a literal brace as {{ or }}). tests/test_sql_parse.py parses every query with sqlglot.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from psycopg import sql

from deribit_ts.resources import sql_dir

NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\w+)\s*$", re.M)


def queries_dir() -> Path:
    return sql_dir() / "queries"


def parse(text: str, source: str = "<text>") -> dict[str, str]:
    """The named queries of one file's text: {name: query without its trailing semicolon}."""
    parts = NAME_LINE.split(text)
    if parts[0].strip() and not all(line.startswith("--") for line in parts[0].strip().splitlines()):
        raise ValueError(f"{source}: SQL before the first `-- name:` line")
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        lines = body.strip().splitlines()
        while lines and lines[0].lstrip().startswith("--"):  # the query's description, not sent to the server
            lines.pop(0)
        query = "\n".join(lines).strip().rstrip(";").rstrip()
        if not query:
            raise ValueError(f"{source}: query {name!r} is empty")
        found[name] = query
    return found


@functools.cache
def load(group: str) -> dict[str, str]:
    """Every query of sql/queries/GROUP.sql (read once per process)."""
    path = queries_dir() / f"{group}.sql"
    return parse(path.read_text(), str(path))


def query(group: str, name: str) -> str:
    """One named query's text, ready for execute() with its parameters."""
    try:
        return load(group)[name]
    except KeyError:
        raise KeyError(f"no query {name!r} in sql/queries/{group}.sql") from None


def compose(group: str, name: str, /, **parts: sql.Composable) -> sql.Composed:
    """A named query with its {placeholders} filled by psycopg.sql objects (identifiers, lists of them)."""
    return sql.SQL(query(group, name)).format(**parts)
