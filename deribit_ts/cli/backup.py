"""`deribit-ts backup` and `deribit-ts restore`: TimescaleDB-correct dumps with a verifying manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.config import mask_password
from deribit_ts.errors import UserError


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)


def backup_cmd(
    ctx: typer.Context,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to", envvar="DERIBIT_TS_BACKUP_DIR", help="Directory for the backups.", show_default="<home>/backups"
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            envvar="DERIBIT_TS_BACKUP_KEEP",
            min=1,
            max=100_000,
            help="Afterwards keep only the newest N backups in that directory.",
        ),
    ] = None,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the database: a pg_dump (custom format) and a manifest of row counts and checksums per table.

    Safe beside a running collector: the dump takes only ACCESS SHARE locks, which block no reads or writes.
    """
    from deribit_ts.db import backup

    s = settings(ctx, dsn)
    directory = (to or s.home / "backups").expanduser()
    result = backup.backup(database_dsn(s), directory, keep=keep, bindirs=backup.client_bindirs(s.home))
    summary = {
        "dump": str(result.dump),
        "manifest": str(result.manifest),
        "tables": result.tables,
        "rows": result.rows,
        "size_bytes": result.dump.stat().st_size,
        "pruned": [str(p) for p in result.pruned],
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{result.dump}")
    typer.echo(
        f"deribit-ts: backup of {result.tables} tables, {result.rows:,} rows, "
        f"{summary['size_bytes'] / 1e6:,.1f} MB; manifest {result.manifest.name}"
        + (f"; removed {len(result.pruned)} older backup(s)" if result.pruned else ""),
        err=True,
    )


def restore_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help="The .dump file written by `deribit-ts backup` (its .manifest.json must lie beside it)."),
    ],
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into an EMPTY database and verify every table against the backup's manifest.

    Creates the TimescaleDB extension at the backup's version, then timescaledb_pre_restore(), pg_restore,
    timescaledb_post_restore(). Refuses a non-empty database or a different TimescaleDB version.
    """
    from deribit_ts.db import backup

    s = settings(ctx, dsn)
    if not s.dsn:
        raise UserError(
            "say where to restore: --dsn postgresql://.../NEW_DATABASE (an empty database; "
            "create it first, e.g. with createdb)"
        )
    tables = backup.restore(file.expanduser(), s.dsn, bindirs=backup.client_bindirs(s.home))
    rows = sum(t["rows"] for t in tables.values())
    if as_json:
        typer.echo(json.dumps({"restored": str(file), "dsn": mask_password(s.dsn), "tables": tables}))
        return
    typer.echo(
        f"deribit-ts: restored {file.name} into {mask_password(s.dsn)}: {len(tables)} tables, "
        f"{rows:,} rows, every row count and checksum as in the manifest",
        err=True,
    )
