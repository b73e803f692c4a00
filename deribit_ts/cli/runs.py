"""`deribit-ts runs`: the run log."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from psycopg.rows import dict_row

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.db.connect import connect
from deribit_ts.db.queries import query
from deribit_ts.display import printable


def runs(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="How many recent runs.")] = 10,
    run: Annotated[int | None, typer.Option("--run", min=1, help="Show this run's tasks, one line each.")] = None,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the run log: per run and dataset, rows fetched, inserted, revised, requests, retries, errors;
    with --run, per task of that run (failed tasks first, with the exchange's message)."""
    with connect(database_dsn(settings(ctx, dsn))) as conn, conn.cursor(row_factory=dict_row) as cur:
        if run is not None:
            _show_tasks(run, cur.execute(query("runs", "tasks"), {"run_id": run}).fetchall(), as_json)
            return
        rows = cur.execute(query("runs", "recent"), {"last": last}).fetchall()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no runs yet")
    for r in rows:
        typer.echo(
            f"run {r['run_id']:<5} {r['command']:<20} {r['status']:<11} {r['started_at']:%Y-%m-%d %H:%M:%S}  "
            f"{r['seconds']:8.1f}s  requests {r['requests']}  retries {r['retries']}  "
            f"throttled {r['throttled']}" + (f"  error: {printable(r['error'])}" if r["error"] else "")
        )
        for dataset, d in sorted(r["datasets"].items()):
            typer.echo(
                f"    {dataset:<12} tasks {d['tasks']:<5} fetched {d['rows_fetched']:<10} "
                f"inserted {d['inserted']:<10} revised {d['revised']:<6} requests {d['requests']:<6} "
                f"retries {d['retries']:<4} failed {d['failed_tasks']}"
            )


def _show_tasks(run_id: int, tasks: list[dict], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(tasks, default=str))
        return
    if not tasks:
        typer.echo(f"run {run_id} worked on no tasks (or there is no such run: see `deribit-ts runs`)")
    for t in tasks:
        typer.echo(
            f"task {t['task_id']:<6} {t['dataset']:<8} {printable(t['key']):<24} {t['range_start']:%Y-%m-%d %H:%M} "
            f"{t['range_end']:%Y-%m-%d %H:%M}  {t['state']:<8} fetched {t['rows_fetched']:<9} "
            f"inserted {t['inserted']:<9} revised {t['revised']:<5} requests {t['requests']:<5} "
            f"retries {t['retries']:<3} errors {t['errors']:<3} {t['seconds']:7.1f}s"
            + (f"  error: {printable(t['error'])}" if t["error"] else "")
        )


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
