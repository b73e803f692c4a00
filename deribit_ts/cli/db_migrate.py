"""`deribit-ts db migrate`: bring a database's schema up to date (or show the plan)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.db.migrate import Step, apply_all


def migrate(
    ctx: typer.Context,
    dsn: DsnOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply pending migrations and re-create changed views (edition-aware)."""
    target = database_dsn(settings(ctx, dsn))

    def show(step: Step) -> None:
        if not as_json:
            typer.echo(step.describe(), err=True)

    steps = apply_all(target, dry_run=dry_run, progress=None if dry_run else show)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"action": s.action, "file": s.file.name, "version": s.file.version, "reason": s.reason}
                    for s in steps
                ]
            )
        )
    elif dry_run:
        for step in steps:
            typer.echo(step.describe())
        typer.echo(f"{len(steps)} step(s) planned" if steps else "up to date")
    else:
        typer.echo(f"{len(steps)} step(s) applied" if steps else "up to date")


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
