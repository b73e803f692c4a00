"""`deribit-ts backfill ...`: the complete history of instruments, candles (options by urgency), funding, index
prices, DVOL and delivery prices."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import psycopg
import typer

from deribit_ts.cli.common import (
    ApiUrlOption,
    DsnOption,
    HistoryUrlOption,
    JsonOption,
    WorkersOption,
    database_dsn,
    names,
    settings,
    since_until,
)
from deribit_ts.config import DEFAULT_WORKERS
from deribit_ts.db.connect import disk_full, server_reason
from deribit_ts.db.migrate import apply_all
from deribit_ts.errors import DatabaseUnavailable, UserError
from deribit_ts.ingest.backfill import KINDS, BackfillRequest, dry_run, run_backfill, run_resume
from deribit_ts.ingest.index import DEFAULT_INDEXES
from deribit_ts.ingest.options import TIERS
from deribit_ts.ingest.progress import Reporter, RichReporter

app = typer.Typer(
    help="Backfill history from the exchange into TimescaleDB (resumable, idempotent).", no_args_is_help=True
)

CurrencyOption = Annotated[str, typer.Option("--currency", help="Comma-separated currencies, or all.")]
SinceOption = Annotated[str | None, typer.Option("--since", help="Start, inclusive (ISO-8601 date/datetime, UTC).")]
UntilOption = Annotated[str | None, typer.Option("--until", help="End, exclusive (ISO-8601 date/datetime, UTC).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
InstrumentOption = Annotated[list[str] | None, typer.Option("--instrument", help="Instrument name (repeatable).")]


def _split(text: str, flag: str) -> list[str]:
    return names(text, flag) or []


def _name_instruments(request: BackfillRequest, instrument: list[str] | None) -> bool:
    """Narrow the request to the named instruments (if any); their currencies scope the catalogue refresh."""
    named = names(instrument, "--instrument")
    if named:
        request.instruments = named
        request.currencies = sorted({n.split("-")[0].split("_")[0] for n in named})
    return bool(named)


def _kinds(text: str) -> list[str]:
    kinds = names(text, "--kind", case="lower") or []
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UserError(f"unknown --kind {', '.join(unknown)}: choose from {', '.join(KINDS)}", exit_code=2)
    return kinds


def _run(
    ctx: typer.Context,
    dsn: str | None,
    api_url: str | None,
    request: BackfillRequest,
    command: str,
    as_json: bool,
    quiet: bool,
    since: str | None,
    until: str | None,
    history_url: str | None = None,
) -> None:
    request.since, request.until = since_until(since, until)
    s = settings(ctx, dsn, api_url, history_url)
    _work(
        s,
        as_json,
        quiet,
        lambda target, reporter: run_backfill(target, s.api_url, request, reporter, command, s.history_url),
    )


def _work(s, as_json: bool, quiet: bool, start) -> None:
    """Run `start(dsn, reporter)` (a backfill or a resume), print its summary, fail in one line."""
    target = database_dsn(s)
    apply_all(target)  # the schema this version needs (a no-op when it is current)
    reporter = Reporter() if quiet or as_json else RichReporter()
    with reporter:
        try:
            summary = asyncio.run(start(target, reporter))
        except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (which cancels the run)
            # Said here because Typer turns a KeyboardInterrupt into a silent exit 130.
            raise UserError(
                "interrupted: every committed window is kept and the plan released; re-run the same command to resume",
                exit_code=130,
            ) from None
        except psycopg.OperationalError as exc:  # the connection dropped mid-run
            full = disk_full(exc, after="nothing half-written, every committed window is kept")
            if full is not None:
                raise full from None
            reason = server_reason(exc)
            raise DatabaseUnavailable(
                f"lost the database connection: {reason} (every committed window is kept; "
                "re-run the same command to resume)"
            ) from None
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    elif not quiet:
        _print_summary(summary)
    left = summary.get("left_for_resume")
    if left and not as_json:  # other plans' tasks are not this command's work: say where they went
        typer.echo(f"{left:,} pending tasks of earlier runs left for `deribit-ts backfill resume`", err=True)
    if summary["status"] != "ok":
        run_id = summary["run_id"]
        raise UserError(
            f"run {run_id}: {summary['error']} (see `deribit-ts runs --run {run_id}`; "
            "re-run the same command to retry what failed)"
        )


def _print_summary(summary: dict) -> None:
    for dataset, d in summary["datasets"].items():
        cov = summary["coverage"].get(dataset, {})
        typer.echo(
            f"{dataset:12} fetched {d['rows_fetched']:>10,}  inserted {d['inserted']:>10,}  "
            f"revised {d['revised']:>6,}  requests {d['requests']:>6,}  "
            f"coverage {cov.get('complete', 0)}/{cov.get('keys', 0)} complete",
            err=True,
        )
    ex = summary["exchange"]
    typer.echo(
        f"run {summary['run_id']} {summary['status']}: {ex['requests']} requests, {ex['retries']} retries, "
        f"{ex['throttled']} throttled",
        err=True,
    )


@app.command("instruments")
def instruments_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "all",
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """The whole instrument catalogue, active and expired, all kinds (--currency all: every currency listed)."""
    request = BackfillRequest(datasets=["instruments"], currencies=_split(currency, "--currency"), workers=workers)
    _run(ctx, dsn, api_url, request, "backfill instruments", as_json, quiet, None, None)


@app.command("candles")
def candles_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "BTC,ETH",
    kind: Annotated[str, typer.Option("--kind", help="Comma-separated: perpetual, future, option.")] = (
        "perpetual,future"
    ),
    instrument: InstrumentOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """One-minute candles into deribit.ohlcv_1m (expired futures included)."""
    request = BackfillRequest(
        datasets=["candles"], currencies=_split(currency, "--currency"), kinds=_kinds(kind), workers=workers
    )
    if _name_instruments(request, instrument):
        request.kinds = list(KINDS)  # the names choose, whatever their kind
    _run(ctx, dsn, api_url, request, "backfill candles", as_json, quiet, since, until)


@app.command("funding")
def funding_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "BTC,ETH",
    instrument: InstrumentOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Hourly funding history of every perpetual into deribit.funding_rates."""
    request = BackfillRequest(datasets=["funding"], currencies=_split(currency, "--currency"), workers=workers)
    _name_instruments(request, instrument)
    _run(ctx, dsn, api_url, request, "backfill funding", as_json, quiet, since, until)


@app.command("index")
def index_cmd(
    ctx: typer.Context,
    index: Annotated[str, typer.Option("--index", help="Comma-separated index names.")] = ",".join(DEFAULT_INDEXES),
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Start, inclusive (ISO-8601 date/datetime, UTC); default: where the exchange's history of "
            "the index starts.",
        ),
    ] = None,
    until: UntilOption = None,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Index price history at the finest resolution the API gives, into deribit.index_prices: one minute only for
    about the last two days, hourly for a month, daily before (`deribit-ts coverage` shows which span is held at
    which resolution)."""
    request = BackfillRequest(datasets=["index"], indexes=_split(index, "--index"), workers=workers)
    _run(ctx, dsn, api_url, request, "backfill index", as_json, quiet, since, until)


def _dry_run(
    ctx: typer.Context,
    dsn: str | None,
    api_url: str | None,
    request: BackfillRequest,
    as_json: bool,
    since: str | None,
    until: str | None,
) -> None:
    """Print what a run would plan, per urgency tier; write nothing (not even the schema)."""
    request.since, request.until = since_until(since, until)
    s = settings(ctx, dsn, api_url)
    target = database_dsn(s)
    if apply_all(target, dry_run=True):
        raise UserError(
            "the database schema is not current: run `deribit-ts db migrate` first "
            "(a dry run writes nothing, not even the schema)"
        )
    result = asyncio.run(dry_run(target, s.api_url, request))
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{'tier':10} {'options':>8} {'tasks':>8} {'requests':>9} {'time':>10}")
    for tier in TIERS:
        t = result["plan"][tier]
        typer.echo(f"{tier:10} {t['options']:>8,} {t['tasks']:>8,} {t['requests']:>9,} {_duration(t['seconds']):>10}")
    tasks = sum(t["tasks"] for t in result["plan"].values())
    futures = result.get("futures")
    if futures and futures["instruments"]:  # a trades run: futures and perpetuals, not tiered
        typer.echo(
            f"{'futures':10} {futures['instruments']:>8,} {futures['tasks']:>8,} {futures['requests']:>9,} "
            f"{_duration(futures['seconds']):>10}"
        )
        tasks += futures["tasks"]
    typer.echo(
        f"{'total':10} {sum(result['tiers'].values()) + (futures['instruments'] if futures else 0):>8,} {tasks:>8,} "
        f"{result['requests']:>9,} {_duration(result['seconds']):>10}"
    )
    typer.echo(f"(at {result['allowance_per_s']:g} requests/s; dry run: nothing was written)")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@app.command("options")
def options_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "BTC,ETH",
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run_: Annotated[bool, typer.Option("--dry-run", help="Print the plan per tier; write nothing.")] = False,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """One-minute candles of every option, active and expired, most urgent first: critical (expired or expiring
    within 7 days), high (7-30 days), medium (30-90), low (beyond). Zero-volume filler candles are not stored."""
    request = BackfillRequest(
        datasets=["candles"], currencies=_split(currency, "--currency"), kinds=["option"], workers=workers
    )
    if dry_run_:
        _dry_run(ctx, dsn, api_url, request, as_json, since, until)
        return
    _run(ctx, dsn, api_url, request, "backfill options", as_json, quiet, since, until)


TRADE_KINDS = ("option", "future")  # perpetuals trade all the time: only when asked for


@app.command("trades")
def trades_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "BTC,ETH",
    kind: Annotated[
        str, typer.Option("--kind", help="Comma-separated: option, future, perpetual (perpetuals only when named).")
    ] = ",".join(TRADE_KINDS),
    instrument: InstrumentOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    history_url: HistoryUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    dry_run_: Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Every trade (price, amount, direction, IV, mark and index at the trade) into deribit.trades, expired
    instruments included, from the history host. Without --since each instrument from its listing; options most
    urgent first, like their candles."""
    request = BackfillRequest(
        datasets=["trades"], currencies=_split(currency, "--currency"), kinds=_kinds(kind), workers=workers
    )
    if _name_instruments(request, instrument):
        request.kinds = list(KINDS)  # a named instrument is wanted whatever its kind
    if dry_run_:
        _dry_run(ctx, dsn, api_url, request, as_json, since, until)
        return
    _run(ctx, dsn, api_url, request, "backfill trades", as_json, quiet, since, until, history_url)


@app.command("dvol")
def dvol_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "BTC,ETH",
    since: SinceOption = None,
    until: UntilOption = None,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """DVOL (Deribit's implied volatility index) in one-minute candles into deribit.volatility_index."""
    request = BackfillRequest(datasets=["dvol"], currencies=_split(currency, "--currency"), workers=workers)
    _run(ctx, dsn, api_url, request, "backfill dvol", as_json, quiet, since, until)


@app.command("delivery")
def delivery_cmd(
    ctx: typer.Context,
    index: Annotated[str, typer.Option("--index", help="Comma-separated index names.")] = ",".join(DEFAULT_INDEXES),
    since: SinceOption = None,
    until: UntilOption = None,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Daily delivery prices of indexes into deribit.delivery_prices."""
    request = BackfillRequest(datasets=["delivery"], indexes=_split(index, "--index"), workers=workers)
    _run(ctx, dsn, api_url, request, "backfill delivery", as_json, quiet, since, until)


@app.command("all")
def all_cmd(
    ctx: typer.Context,
    currency: CurrencyOption = "BTC,ETH",
    since: SinceOption = None,
    until: UntilOption = None,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Instruments, then funding, index, DVOL and delivery prices, then candles of perpetuals, futures and options
    (most urgent first: expired or expiring within 7 days, then by days to expiry), and the trades of options and
    futures."""
    currencies = _split(currency, "--currency")
    request = BackfillRequest(
        datasets=["instruments", "funding", "index", "dvol", "delivery", "candles", "trades"],
        currencies=currencies,
        kinds=list(KINDS),
        indexes_named=False,
        workers=workers,
        trade_kinds=list(TRADE_KINDS),
    )
    _run(ctx, dsn, api_url, request, "backfill all", as_json, quiet, since, until)


@app.command("resume")
def resume_cmd(
    ctx: typer.Context,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    history_url: HistoryUrlOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Finish every unfinished backfill task, whichever command planned it (e.g. an interrupted `backfill all`: a
    bounded command such as `backfill candles --since A --until B` works only its own range and leaves the rest)."""
    s = settings(ctx, dsn, api_url, history_url)
    _work(s, as_json, quiet, lambda target, reporter: run_resume(target, s.api_url, reporter, workers, s.history_url))
