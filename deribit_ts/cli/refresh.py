"""`deribit-ts refresh`: bring the rollups (ohlcv_5m/15m/1h/1d) up to date."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.db.connect import connect
from deribit_ts.ingest import rollups, round_research, sanity

# Each process is a whole interpreter (spawned); a bound keeps a typo from forking thousands.
MAX_FIT_PROCESSES = 64


def refresh(
    ctx: typer.Context,
    dsn: DsnOption = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Apache edition: rebuild every rollup from the one-minute candles, not only the days that "
            "changed (the Community edition's continuous aggregates always know what changed); judge every "
            "candle's sanity again.",
        ),
    ] = False,
    research_seconds: Annotated[
        float,
        typer.Option(
            "--research-seconds",
            min=0,
            help="Stop summarizing old snapshot rounds after this many seconds (0: until none is left); the rest "
            "waits for the next refresh. A year of 5-minute rounds is hours of SVI fitting.",
        ),
    ] = 300.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=MAX_FIT_PROCESSES,
            help="Processes fitting the old rounds' SVI smiles (the fits are CPU-bound: more than the machine's "
            "cores gains nothing).",
        ),
    ] = 1,
    as_json: JsonOption = False,
) -> None:
    """Bring the rollups (deribit.ohlcv_5m, ohlcv_15m, ohlcv_1h, ohlcv_1d) and the research tables up to date.

    Only what changed since the last refresh is recomputed: the days whose one-minute candles were written
    (Apache edition), or the buckets Timescale's invalidation log names (Community edition). Every backfill
    ends with a refresh; run this after writing candles some other way, or from a timer (deploy/).

    Then the research tables: the realized variance of every futures day whose candles changed (realized_vol_1d,
    vol_risk_premium) and the research rows of every snapshot round stored before this version summarized it at
    round time (iv_constant_maturity, max_pain, put_call_ratio, svi_fit; 0.2 s or more of CPU a round, mostly
    SVI fitting, progress on stderr), oldest first, for --research-seconds at most: the rounds left are taken up by
    the next refresh (a timer's refreshes catch a year of rounds up in turn). --full recomputes every day's
    realized variance too.

    Then the sanity findings (deribit.sanity_violations): the candles written since the last refresh, and the
    older days whose candles or trades changed since, are judged and what breaks a rule is stored. --full judges
    every candle again (after an instrument's listing, tick or expiry changed).
    """
    dsn_ = database_dsn(settings(ctx, dsn))
    summary = rollups.refresh(dsn_, full=full)
    with connect(dsn_, autocommit=True, application_name="deribit-ts refresh") as conn:
        summary["research"] = round_research.refresh(
            conn, full=full, on_progress=_progress, seconds=research_seconds or None, workers=workers
        )
        summary["sanity"] = sanity.refresh(conn, full=full)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(describe(summary))
    typer.echo(describe_research(summary["research"]))
    typer.echo(sanity.describe(summary["sanity"]))


def _progress(done: int, total: int) -> None:
    typer.echo(f"research rows: {done:,} of {total:,} snapshot rounds summarized", err=True)


def describe_research(research: dict) -> str:
    line = (
        f"research tables refreshed: {research['realized_variance_days']} instrument-day(s) of realized variance, "
        f"{research['rounds_summarized']} snapshot round(s) summarized ({research['svi_fits']} SVI fits) in "
        f"{research['seconds']:.3f} s"
    )
    left = research.get("rounds_pending")
    if left:
        line += f"; {left:,} round(s) left for the next refresh"
        rate = research.get("rounds_per_second")
        if rate:
            hours = left / rate / 3600
            line += f" ({rate:g} rounds/s: about {f'{hours:.1f} h' if hours >= 1 else f'{hours * 60:.0f} min'} more)"
    return line


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
