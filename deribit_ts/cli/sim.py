"""`deribit-ts sim`: run the Deribit simulator (a local stand-in for the public API v2)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from deribit_ts.errors import UserError
from deribit_ts.sim.config import MAX_CLOCK_SPEED, MAX_LATENCY_MS

app = typer.Typer(
    help="The Deribit simulator: a deterministic local exchange for tests, demos and benchmarks.", no_args_is_help=True
)


def _parse_date(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} expects an ISO date like 2024-03-01 or 2024-03-01T12:00:00, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0 = any free port).")] = 8765,
    seed: Annotated[int, typer.Option(help="Market seed: same seed, same market.")] = 42,
    start: Annotated[str, typer.Option(help="First day of market history (UTC), before --now.")] = "2018-08-14",
    now: Annotated[
        str, typer.Option(help="Simulated 'now': an ISO date/time (2000-2099), or 'real' for the wall clock.")
    ] = "real",
    clock_speed: Annotated[
        float,
        typer.Option(min=0.0, max=MAX_CLOCK_SPEED, help="With a fixed --now: 0 = frozen, X = X times real speed."),
    ] = 0.0,
    latency_ms: Annotated[
        float, typer.Option(min=0.0, max=MAX_LATENCY_MS, help="Delay added to every answer, in milliseconds.")
    ] = 0.0,
    rate_limit: Annotated[str, typer.Option(help="'deribit' (credit pools per client address) or 'off'.")] = "deribit",
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests answered with an injected fault (0-1).")
    ] = 0.0,
    chart_max_candles: Annotated[int, typer.Option(min=1, help="Candles per chart answer before truncation.")] = 5001,
    chart_truncate: Annotated[str, typer.Option(help="End a too-long chart answer loses: 'old' or 'new'.")] = "old",
    pathologies_on: Annotated[
        str | None,
        typer.Option(
            "--pathologies",
            help="Only these pathologies, comma-separated: filler-candles, outages, bad-ticks, "
            "late-corrections; or all / none.",
            show_default="all",
        ),
    ] = None,
    no_pathologies: Annotated[
        bool,
        typer.Option(
            "--no-pathologies", help="Clean market: no fillers, outages, spikes or revisions (= --pathologies none)."
        ),
    ] = False,
) -> None:
    """Serve the simulated Deribit public API until stopped (Ctrl-C). Prints the base URL first."""
    from deribit_ts.sim import Pathologies, SimConfig, serve_forever

    if no_pathologies and pathologies_on is not None:
        raise UserError("give either --pathologies or --no-pathologies, not both")
    pathologies = Pathologies.from_names("none" if no_pathologies else pathologies_on or "all")
    config = SimConfig(
        seed=seed,
        start=_parse_date(start, "--start"),
        now=None if now == "real" else _parse_date(now, "--now"),
        clock_speed=clock_speed,
        host=host,
        port=port,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fault_rate=fault_rate,
        chart_max_candles=chart_max_candles,
        chart_truncate=chart_truncate,
        pathologies=pathologies,
    )

    def ready(url: str) -> None:
        typer.echo(url)
        sys.stdout.flush()

    try:
        serve_forever(config, on_ready=ready)
    except KeyboardInterrupt:
        pass
