"""`deribit-ts status`: is every collected dataset fresh? Exits 1 when anything is staler than its threshold."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.collect.status import Thresholds, age, collect_status, stamp
from deribit_ts.db.connect import connect
from deribit_ts.display import printable


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(
        ctx: typer.Context,
        max_lag: Annotated[
            list[str] | None,
            typer.Option(
                "--max-lag",
                help="DATASET=SECONDS: staler than this fails the check (repeatable; also "
                "DERIBIT_TS_STATUS_MAX_LAG, comma-separated).",
            ),
        ] = None,
        max_heartbeat_age: Annotated[
            float | None,
            typer.Option(
                "--max-heartbeat-age",
                help="Seconds; an older leader heartbeat fails the check (default 60; also "
                "DERIBIT_TS_STATUS_MAX_HEARTBEAT_AGE).",
            ),
        ] = None,
        dsn: DsnOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Per dataset the newest data, its lag and errors; which collector leads and its last heartbeat. Exits 1
        when anything is staler than its threshold (a monitoring check)."""
        thresholds = Thresholds.parse(max_lag or [], max_heartbeat_age)
        target = database_dsn(settings(ctx, dsn), start=False)
        with connect(target, application_name="deribit-ts status") as conn:
            report = collect_status(conn, thresholds)
        if as_json:
            typer.echo(json.dumps(report))
        else:
            _print(report)
        if not report["ok"]:
            raise typer.Exit(1)


def _print(report: dict) -> None:
    """Every timestamp as 2024-03-08 08:10:00Z (UTC), every duration as 45s / 12m05s / 3h02m / 2d04h."""
    typer.echo(f"as of    {stamp(report['reference_time'])} (the exchange's clock)")
    leader = report["leader"]
    if leader:
        typer.echo(
            f"leader   {leader['process_id']}  since {stamp(leader['leader_since'])}  "
            f"heartbeat {age(leader['heartbeat_age_s'])} ago  {printable(leader['state'])}"
        )
    for p in report["processes"]:
        if not p["holds_lock"]:
            typer.echo(
                f"{p['role']:8} {p['process_id']}  heartbeat {age(p['heartbeat_age_s'])} ago  {printable(p['state'])}"
            )
    typer.echo(f"{'dataset':18} {'keys':>5} {'newest':21} {'lag':>7} {'max':>7} {'errors':>6}  state")
    for d in report["datasets"]:
        state = "STALE" if d["stale"] else ("-" if not d["keys"] else "ok")
        typer.echo(
            f"{d['dataset']:18} {d['keys']:>5} {stamp(d['newest']):21} {age(d['lag_s']):>7} "
            f"{age(d['threshold_s']):>7} {d['errors']:>6}  {state}"
        )
    for problem in report["problems"]:
        typer.echo(f"problem: {printable(problem)}", err=True)
    typer.echo("ok" if report["ok"] else "NOT OK", err=True)
