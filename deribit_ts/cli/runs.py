"""`deribit-ts runs`: the run log."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from psycopg.rows import dict_row

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.db.connect import connect

_RUNS = """
SELECT r.run_id, r.command, r.status, r.started_at, r.finished_at,
       extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float AS seconds,
       r.requests, r.retries, r.throttled, r.errors, r.error,
       coalesce(jsonb_object_agg(d.dataset, jsonb_build_object(
           'tasks', d.tasks, 'failed_tasks', d.failed_tasks, 'rows_fetched', d.rows_fetched,
           'inserted', d.inserted, 'revised', d.revised, 'requests', d.requests, 'retries', d.retries,
           'errors', d.errors, 'task_seconds', extract(epoch FROM d.task_time)))
           FILTER (WHERE d.dataset IS NOT NULL), '{}') AS datasets
  FROM deribit_ts.runs r
  LEFT JOIN deribit_ts.run_datasets d USING (run_id)
 GROUP BY r.run_id
 ORDER BY r.run_id DESC
 LIMIT %s
"""


def runs(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="How many recent runs.")] = 10,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the run log: per run and dataset, rows fetched, inserted, revised, requests, retries, errors."""
    with connect(database_dsn(settings(ctx, dsn))) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_RUNS, (last,)).fetchall()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no runs yet")
    for r in rows:
        typer.echo(f"run {r['run_id']:<5} {r['command']:<20} {r['status']:<11} {r['started_at']:%Y-%m-%d %H:%M:%S}  "
                   f"{r['seconds']:8.1f}s  requests {r['requests']}  retries {r['retries']}  "
                   f"throttled {r['throttled']}" + (f"  error: {r['error']}" if r["error"] else ""))
        for dataset, d in sorted(r["datasets"].items()):
            typer.echo(f"    {dataset:<12} tasks {d['tasks']:<5} fetched {d['rows_fetched']:<10} "
                       f"inserted {d['inserted']:<10} revised {d['revised']:<6} requests {d['requests']:<6} "
                       f"retries {d['retries']:<4} failed {d['failed_tasks']}")


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
