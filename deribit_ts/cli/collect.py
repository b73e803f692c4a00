"""`deribit-ts collect`: keep every dataset current, 24/7 (leader election, catch-up, heartbeat)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from deribit_ts import validate
from deribit_ts.cli.common import ApiUrlOption, DsnOption, HistoryUrlOption, database_dsn, settings
from deribit_ts.collect.collector import CollectSettings, check_environment, run_collector
from deribit_ts.db.migrate import apply_all
from deribit_ts.errors import UserError

KINDS = ("perpetual", "future", "option")


def _kinds(text: str) -> list[str]:
    kinds = validate.names(text, "--kinds", case="lower") or []
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UserError(f"unknown --kinds {', '.join(unknown) or text!r}: choose from {', '.join(KINDS)}")
    return kinds


def _seconds(value: float, flag: str) -> float:
    if not value > 0:
        raise UserError(f"{flag} must be a positive number of seconds, not {value}")
    return value


def register(app: typer.Typer) -> None:
    @app.command("collect")
    def collect_cmd(
        ctx: typer.Context,
        currency: Annotated[
            str,
            typer.Option(
                "--currency", envvar="DERIBIT_TS_COLLECT_CURRENCY", help="Comma-separated currencies, or all."
            ),
        ] = "BTC,ETH",
        kinds: Annotated[
            str,
            typer.Option(
                "--kinds", envvar="DERIBIT_TS_COLLECT_KINDS", help="Comma-separated: perpetual, future, option."
            ),
        ] = "perpetual,future",
        since: Annotated[
            str | None,
            typer.Option(
                "--since",
                help="Collect from here where nothing was collected yet (ISO-8601, UTC); default: the first "
                "start's now. Later starts continue from each dataset's watermark.",
            ),
        ] = None,
        healthcheck_url: Annotated[
            str | None,
            typer.Option(
                "--healthcheck-url",
                envvar="DERIBIT_TS_HEALTHCHECK_URL",
                help="healthchecks.io-style URL: pinged at URL/start, URL while healthy, URL/fail with the reason.",
            ),
        ] = None,
        catalogue_every: Annotated[
            float,
            typer.Option(
                "--catalogue-every", max=7 * 86400, help="Seconds between catalogue refreshes (exchange clock)."
            ),
        ] = 300,
        funding_every: Annotated[
            float,
            typer.Option("--funding-every", max=7 * 86400, help="Seconds between funding fetches (exchange clock)."),
        ] = 3600,
        snapshots_every: Annotated[
            float,
            typer.Option(
                "--snapshots-every",
                max=7 * 86400,
                help="Seconds between bulk option snapshots, with --kinds option (exchange clock).",
            ),
        ] = 300,
        greeks_every: Annotated[
            float,
            typer.Option(
                "--greeks-every",
                max=7 * 86400,
                help="Seconds between option snapshots with the exchange's greeks, with --kinds option.",
            ),
        ] = 3600,
        workers: Annotated[
            int,
            typer.Option(
                "--workers",
                min=2,
                max=32,
                envvar="DERIBIT_TS_COLLECT_WORKERS",
                help="Concurrent tasks (two are kept for the newest data).",
            ),
        ] = 4,
        dsn: DsnOption = None,
        api_url: ApiUrlOption = None,
        history_url: HistoryUrlOption = None,
    ) -> None:
        """Keep every dataset current until stopped (SIGTERM/SIGINT): candles within 90 s of the minute's close,
        index every minute, funding hourly, the catalogue every few minutes; gaps after any outage are filled
        through the backfill engine. Any number may run on one database: one leads, the others stand by."""
        from datetime import timedelta

        if healthcheck_url is not None:
            healthcheck_url = validate.api_url(healthcheck_url, "--healthcheck-url / DERIBIT_TS_HEALTHCHECK_URL")
        request = CollectSettings(
            currencies=validate.names(currency, "--currency", case="upper") or [],
            kinds=_kinds(kinds),
            healthcheck_url=healthcheck_url,
            catalogue_every=timedelta(seconds=_seconds(catalogue_every, "--catalogue-every")),
            funding_every=timedelta(seconds=_seconds(funding_every, "--funding-every")),
            snapshots_every=timedelta(seconds=_seconds(snapshots_every, "--snapshots-every")),
            greeks_every=timedelta(seconds=_seconds(greeks_every, "--greeks-every")),
            workers=workers,
        )
        request.since = validate.timestamp(since, "--since")
        check_environment()
        s = settings(ctx, dsn, api_url, history_url)
        target = database_dsn(s)
        apply_all(target)
        # A daemon says what it does without -v: when it starts leading, a summary every few minutes, when it stops.
        own = logging.getLogger("deribit_ts.collect")
        if own.getEffectiveLevel() > logging.INFO:
            own.setLevel(logging.INFO)
        asyncio.run(run_collector(target, s.api_url, request, history_url=s.history_url))
