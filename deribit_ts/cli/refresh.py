"""`deribit-ts refresh`: bring the rollups (ohlcv_5m/15m/1h/1d) up to date."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.ingest import rollups


def refresh(
    ctx: typer.Context,
    dsn: DsnOption = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Apache edition: rebuild every rollup from the one-minute candles, not only the days that "
            "changed (the Community edition's continuous aggregates always know what changed).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Bring the rollups (deribit.ohlcv_5m, ohlcv_15m, ohlcv_1h, ohlcv_1d) up to date.

    Only what changed since the last refresh is recomputed: the days whose one-minute candles were written
    (Apache edition), or the buckets Timescale's invalidation log names (Community edition). Every backfill
    ends with a refresh; run this after writing candles some other way, or from a timer (deploy/).
    """
    summary = rollups.refresh(database_dsn(settings(ctx, dsn)), full=full)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(describe(summary))


def describe(summary: dict) -> str:
    seconds = summary.get("seconds") or 0
    if summary.get("edition") == "apache":
        if not summary.get("days"):
            return f"rollups up to date: nothing changed since the last refresh ({seconds:.3f} s)"
        rows = ", ".join(f"{level} {count}" for level, count in (summary.get("rows") or {}).items())
        return (
            f"rollups refreshed: {summary['days']} instrument-day(s) recomputed in {seconds:.3f} s "
            f"(bucket rows written: {rows})"
        )
    names = ", ".join(summary.get("rollups") or []) or "none found"
    return f"continuous aggregates refreshed ({names}) in {seconds:.3f} s"


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh)
