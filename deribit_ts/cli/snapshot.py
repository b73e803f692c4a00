"""`deribit-ts snapshot ...`: point-in-time data that cannot be backfilled (option greeks and IVs)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Annotated

import psycopg
import typer

from deribit_ts.cli.common import ApiUrlOption, DsnOption, JsonOption, database_dsn, names, settings
from deribit_ts.db.connect import disk_full, server_reason
from deribit_ts.db.migrate import apply_all
from deribit_ts.errors import DatabaseUnavailable, UserError
from deribit_ts.ingest.snapshots import run_snapshot

app = typer.Typer(
    help="Snapshots of live data the exchange cannot give back later (option greeks and IVs).", no_args_is_help=True
)


class _Progress:
    """Tickers done / total on stderr: a bar on a terminal, a plain line every 10 % otherwise; nothing if quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.reported = -1
        self.started = time.monotonic()

    def __enter__(self) -> _Progress:
        if not self.quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("tickers"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("tickers", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)
            return
        tenth = done * 10 // max(total, 1)
        if tenth > self.reported:
            self.reported = tenth
            typer.echo(f"tickers {done}/{total} ({time.monotonic() - self.started:.0f} s)", err=True)


@app.command("options")
def options_cmd(
    ctx: typer.Context,
    currency: Annotated[str, typer.Option("--currency", help="Comma-separated currencies, or all.")] = "BTC,ETH",
    bulk_only: Annotated[
        bool,
        typer.Option(
            "--bulk-only",
            help="Only the bulk book summary (one request per currency); greeks computed in SQL "
            "from the mark IV, no bid/ask IVs.",
        ),
    ] = False,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary line.")] = False,
) -> None:
    """One consistent snapshot round of the live option chain into deribit.option_snapshots.

    Every row of the round shares one ts (the exchange's time at its start); the whole round is one transaction.
    A round of ~800 options per currency takes about 40 s per currency at Deribit's 20 requests/s.
    """
    currencies = names(currency, "--currency", case="upper")  # checked before anything is opened
    s = settings(ctx, dsn, api_url)
    target = database_dsn(s)
    apply_all(target)  # the schema this version needs (a no-op when it is current)
    with _Progress(quiet or as_json) as progress:
        try:
            summary = asyncio.run(run_snapshot(target, s.api_url, currencies, bulk_only=bulk_only, on_ticker=progress))
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise UserError(
                "interrupted: nothing of this round was written (a round is one transaction); run the command again",
                exit_code=130,
            ) from None
        except psycopg.OperationalError as exc:
            full = disk_full(exc, after="nothing of this round was written")
            if full is not None:
                raise full from None
            reason = server_reason(exc)
            raise DatabaseUnavailable(
                f"lost the database connection: {reason} (nothing of this round was written; run the command again)"
            ) from None
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    elif not quiet:
        per = ", ".join(f"{c} {n}" for c, n in summary["by_currency"].items())
        source = "greeks from SQL (bulk only)" if summary["bulk_only"] else "greeks from the exchange"
        typer.echo(
            f"snapshot {summary['ts']}: {summary['options']} options ({per}), {source}; "
            f"{summary['requests']} requests in {summary['seconds']:.1f} s, run {summary['run_id']}",
            err=True,
        )
