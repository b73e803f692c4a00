"""The report as terminal tables (rich), JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table as RichTable

from deribit_ts.report.data import Section, Table


def cell_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):  # numeric columns of a view: shown like the doubles
        value = float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_sections(sections: list[Section], out: TextIO) -> None:
    """Every printable table of every section, or the line saying why it cannot be shown."""
    console = Console(file=out, highlight=False, soft_wrap=False, width=None if out.isatty() else 200)
    for section in sections:
        for table in section.tables:
            if table.chart_only:
                continue
            if table.missing:
                console.print(f"[bold]{table.title}[/bold]: not available: {table.missing}")
            elif not table.rows:
                console.print(f"[bold]{table.title}[/bold]: {EMPTY_MEANS.get(table.name, 'no rows')}")
            else:
                console.print(_rich_table(table))
            if table.note and not table.missing:
                console.print(table.note)
            console.print()


# What an empty table means, said so a user knows whether it is good news or a missing step.
EMPTY_MEANS = {
    "coverage": "nothing backfilled yet (see `deribit-ts backfill --help`)",
    "coverage_incomplete": "none: every key has been fetched over all it asks for",
    "gaps": "no gaps: every minute asked for is present or filled",
    "sanity": "no violations",
    "basis": "no dated future with candles yet (deribit-ts backfill candles --kind future)",
    "funding": "no funding history yet (deribit-ts backfill funding)",
    "smile": "no option snapshots yet (deribit-ts snapshot options)",
    "iv_term_structure": "no option snapshots yet (deribit-ts snapshot options)",
}


def _rich_table(table: Table) -> RichTable:
    rich = RichTable(title=f"{table.title} ({len(table.rows):,} rows)", title_justify="left", box=box.SIMPLE_HEAD)
    numeric = [
        bool(table.rows)
        and isinstance(table.rows[0][i], int | float | Decimal)
        and not isinstance(table.rows[0][i], bool)
        for i in range(len(table.columns))
    ]
    for column, is_number in zip(table.columns, numeric, strict=True):
        rich.add_column(column, justify="right" if is_number else "left", overflow="fold")
    for row in table.rows:
        rich.add_row(*(cell_text(v) for v in row))
    return rich


def _json_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def to_json(sections: list[Section], *, single: bool) -> str:
    """One section: the list of its main table's rows. Several: {section: rows}, and `unavailable` with reasons."""
    if single:
        return json.dumps(sections[0].main.records(), default=_json_value)
    payload: dict = {s.name: s.main.records() for s in sections if not s.main.missing}
    unavailable = {s.name: s.main.missing for s in sections if s.main.missing}
    if unavailable:
        payload["unavailable"] = unavailable
    return json.dumps(payload, default=_json_value)


def to_csv(section: Section) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(section.main.columns)
    for row in section.main.rows:
        writer.writerow(["" if v is None else _json_value(v) if isinstance(v, datetime | date) else v for v in row])
    return buffer.getvalue()
