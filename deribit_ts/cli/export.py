"""`deribit-ts export`: a view or one read-only query to a Parquet, CSV or JSON-lines file."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings, since_until

FORMATS = ("parquet", "csv", "jsonl")  # = deribit_ts.export.FORMATS (not imported here: sqlglot loads slowly)

# The examples at the end of its help are in deribit_ts/cli/examples.py, with every command's.
_HELP = """Write a view of schema deribit, or one read-only SELECT, to FILE at full precision.

Rows stream from the server (nothing is held in memory) inside a READ ONLY transaction; the file appears only \
when complete. --since/--until bound the result's ts (or day) column.
"""


def export_cmd(
    ctx: typer.Context,
    out: Annotated[str, typer.Option("--out", metavar="FILE", help="The file to write (replaced when complete).")],
    view: Annotated[
        str | None, typer.Argument(help="A view of schema deribit, e.g. ohlcv_1d (or use --sql).", show_default=False)
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--sql",
            metavar="QUERY",
            help="One read-only SELECT instead of a VIEW; bare names of the public views mean deribit.<name>.",
        ),
    ] = None,
    where: Annotated[
        str | None, typer.Option("--where", metavar="COND", help="One SQL condition on the result's columns.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ts (or day) from, inclusive (ISO-8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ts (or day) until, exclusive (ISO-8601, UTC).")] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "parquet",
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    from deribit_ts.export import export

    start, end = since_until(since, until)
    result = export(
        database_dsn(settings(ctx, dsn)), view, sql=query, where=where, since=start, until=end, format=fmt, out=out
    )
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        typer.echo(f"{result.rows:,} rows written to {result.out} ({result.format})")


def register(app: typer.Typer) -> None:
    app.command("export", help=_HELP)(export_cmd)
