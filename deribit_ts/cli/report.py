"""`deribit-ts report [SECTION]`: coverage, gaps, sanity, basis, funding and IV smiles from the research views."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.db.connect import connect
from deribit_ts.errors import UserError
from deribit_ts.report import SECTIONS, Filters, collect, text
from deribit_ts.timeutil import check_order, parse_utc

_HELP = f"""Show what the research views say: {", ".join(SECTIONS)} (all of them without SECTION).

Terminal tables by default; --json / --csv print SECTION's rows on stdout; --html FILE writes one self-contained
page with plots (coverage heatmap, basis term structure, funding, IV smiles) that opens offline."""


def report(
    ctx: typer.Context,
    section: Annotated[
        str | None, typer.Argument(help=f"One of: {', '.join(SECTIONS)}. Default: all.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print SECTION's rows as CSV on stdout.")] = False,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", dir_okay=False, help="Write a self-contained HTML page with plots to FILE."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Window start, inclusive (ISO-8601, UTC). Default: a window ending at the newest data."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end, exclusive (ISO-8601, UTC).")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="Only this currency (e.g. BTC).")] = None,
    instrument: Annotated[
        str | None, typer.Option("--instrument", help="Only this instrument or index (e.g. BTC-PERPETUAL, btc_usd).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N rows of gaps and sanity.")] = None,
    dsn: DsnOption = None,
) -> None:
    names = _sections(section, as_json=as_json, as_csv=as_csv)
    filters = Filters(
        since=parse_utc(since, flag="--since") if since else None,
        until=parse_utc(until, flag="--until") if until else None,
        currency=currency.strip().upper() if currency else None,
        instrument=instrument.strip() if instrument else None,
        limit=limit,
    )
    check_order(filters.since, filters.until)
    if html_file is not None and not html_file.resolve().parent.is_dir():  # say so before minutes of queries
        raise UserError(f"--html {html_file}: the directory {html_file.resolve().parent} does not exist")
    target = database_dsn(settings(ctx, dsn))
    with connect(target) as conn:
        sections = collect(conn, names, filters)

    if (as_json or as_csv) and section and sections[0].main.missing:
        raise UserError(f"report {section}: {sections[0].main.missing}")
    if html_file is not None:
        from deribit_ts.report.html import render

        _write_atomically(html_file, render(sections, database=_describe(target)))
        typer.echo(f"deribit-ts: wrote {html_file}", err=True)
    if as_json:
        typer.echo(text.to_json(sections, single=section is not None))
    elif as_csv:
        sys.stdout.write(text.to_csv(sections[0]))
    elif html_file is None:
        text.print_sections(sections, sys.stdout)


def _sections(section: str | None, *, as_json: bool, as_csv: bool) -> list[str]:
    if as_json and as_csv:
        raise UserError("--json and --csv exclude each other: choose one")
    if section is None:
        if as_csv:
            raise UserError(f"--csv prints one section: name it (one of {', '.join(SECTIONS)})")
        return list(SECTIONS)
    if section.lower() not in SECTIONS:
        raise UserError(f"unknown report section {section!r}: choose one of {', '.join(SECTIONS)}", exit_code=2)
    return [section.lower()]


def _describe(dsn: str) -> str:
    """Which database, without user or password."""
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    return f"database {parts.get('dbname', '?')} on {parts.get('host', 'localhost')}:{parts.get('port', 5432)}"


def _write_atomically(path: Path, content: str) -> None:
    # Written next to the target and renamed over it: an interrupted run leaves no half-written page.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    app.command("report", help=_HELP)(report)
