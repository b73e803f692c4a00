"""`deribit-ts coverage`: what was asked for, what is in the database, what is still missing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Annotated

import typer
from psycopg.rows import dict_row

from deribit_ts.cli.common import DsnOption, database_dsn, settings, shown
from deribit_ts.db.connect import connect
from deribit_ts.db.queries import query
from deribit_ts.display import printable
from deribit_ts.errors import UsageError

# Every dataset a backfill records coverage for (deribit_ts.ingest.backfill.DATASETS but the catalogue, which has
# no time range; written out so that `coverage --help` need not import the backfill: a test keeps them equal).
COVERED_DATASETS = ("candles", "funding", "index", "dvol", "delivery", "trades")


def coverage(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help=f"Only this dataset ({', '.join(COVERED_DATASETS)}).")
    ] = None,
    incomplete: Annotated[bool, typer.Option("--incomplete", help="Only keys with missing ranges.")] = False,
    summary: Annotated[bool, typer.Option("--summary", help="One line per dataset instead of one per key.")] = False,
    dsn: DsnOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the rows as JSON on stdout (durations in seconds, numbers as numbers)."),
    ] = False,
) -> None:
    """Coverage of every backfilled dataset and key (from the deribit.coverage view): rows stored, the share of a
    gapless series they are ("held"; below 100 % where the exchange had no data, see deribit.gap_report), and for
    the index the resolution each span is held at."""
    with connect(database_dsn(settings(ctx, dsn))) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("coverage", "summary" if summary else "keys"), {"dataset": dataset}).fetchall()
        if dataset is not None and not rows:
            _check_dataset(cur, dataset)
    if summary:
        _print_summary(rows, as_json)
        return
    shown = len(rows)
    rows = [r for r in rows if not incomplete or not r["complete"]]
    if as_json:
        typer.echo(json.dumps(rows, default=_json_value))
        return
    if not rows:
        typer.echo(
            "every backfilled range is complete"
            if incomplete and shown
            else "nothing backfilled yet (see `deribit-ts backfill --help`)"
        )
        return
    typer.echo(f"{'dataset':<9} {'key':<22} {'from':<17} {'until':<17} {'rows':>10} {'held':>8}  status")
    for r in rows:
        status = "complete" if r["complete"] else f"missing {r['missing_time']}: {r['missing']}"
        if r["unsettled_time"]:
            status += f" ({r['unsettled_time']} still settling, fetched again by the next run)"
        if r["dataset"] == "index" and r["resolution"]:
            # The exchange serves old index history coarser than one minute: say at which resolution each span is.
            status += f" at {r['resolution']}"
        held = "" if r["completeness_pct"] is None else f"{r['completeness_pct']:.2f}%"
        typer.echo(
            f"{r['dataset']:<9} {printable(r['key']):<22} {r['wanted_from']:%Y-%m-%d %H:%M} "
            f"{r['wanted_until']:%Y-%m-%d %H:%M} {r['rows']:>10,} {held:>8}  {status}"
        )
    done = sum(r["complete"] for r in rows)
    typer.echo(f"{done}/{len(rows)} complete")


def _print_summary(rows: list[dict], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, default=_json_value))
        return
    if not rows:
        typer.echo("nothing backfilled yet (see `deribit-ts backfill --help`)")
        return
    typer.echo(f"{'dataset':<9} {'keys':>7} {'complete':>9} {'rows':>13}  {'first':<16}  {'last':<16}  never fetched")
    for r in rows:
        first = f"{r['first_ts']:%Y-%m-%d %H:%M}" if r["first_ts"] else "-"
        last = f"{r['last_ts']:%Y-%m-%d %H:%M}" if r["last_ts"] else "-"
        typer.echo(
            f"{r['dataset']:<9} {r['keys']:>7,} {r['complete_keys']:>9,} {r['rows'] or 0:>13,}  {first:<16}  "
            f"{last:<16}  {r['missing_time'] or '-'}"
        )


def _json_value(value: object) -> object:
    """What json cannot write itself: numbers stay numbers (a percentage, a duration in seconds), times as text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _check_dataset(cur, dataset: str) -> None:
    """A --dataset nothing was ever backfilled under and that no backfill knows is a typo: say so (exit 2)."""
    from deribit_ts.ingest.backfill import DATASETS

    present = {row["dataset"] for row in cur.execute(query("coverage", "datasets"))}
    known = sorted((set(DATASETS) - {"instruments"}) | present)
    if dataset not in known:
        raise UsageError(f"unknown --dataset {shown(dataset)}: choose from {', '.join(known)}")


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage)
