"""`deribit-ts db ...`: run the embedded TimescaleDB and report on whichever database is in use."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from typing import Annotated, TextIO

import psycopg
import typer

from deribit_ts.cli.common import DsnOption, JsonOption, database_dsn, settings
from deribit_ts.config import Settings, mask_password
from deribit_ts.db import storage
from deribit_ts.db.connect import connect, database_size, server_info
from deribit_ts.db.embedded import Cluster
from deribit_ts.db.migrate import apply_all, migration_state
from deribit_ts.errors import UserError

app = typer.Typer(
    help="Run the embedded PostgreSQL + TimescaleDB (up, down, psql, logs) and inspect the database in use.",
    no_args_is_help=True,
)


def _embedded(ctx: typer.Context, dsn: str | None, command: str) -> Cluster:
    """The embedded cluster, refusing politely when the user pointed us at another server."""
    s = settings(ctx, dsn)
    if s.dsn:
        raise UserError(
            f"`deribit-ts db {command}` manages only the embedded cluster, but a database is configured "
            f"({mask_password(s.dsn)} via --dsn / DERIBIT_TS_DSN); unset it to use the embedded cluster"
        )
    return Cluster(s.home)


@app.command()
def up(
    ctx: typer.Context,
    dsn: DsnOption = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Listen on this port (remembered for next time).", min=1, max=65535)
    ] = None,
) -> None:
    """Create (first time), start the embedded cluster and bring its schema up to date. Safe to repeat."""
    cluster = _embedded(ctx, dsn, "up")
    was_running = cluster.is_running()
    cluster.up(port=port)
    if was_running:
        typer.echo(f"deribit-ts: the embedded cluster is already running on port {cluster.status()['port']}", err=True)
    steps = apply_all(cluster.url(), progress=lambda step: typer.echo(f"  {step.describe()}", err=True))
    typer.echo(f"deribit-ts: schema: {_steps_summary(steps)}" if steps else "deribit-ts: schema up to date", err=True)


def _steps_summary(steps) -> str:
    """What `db up` did, counted as `db status` counts it (migrations applied and skipped, view files)."""
    count = {action: sum(s.action == action for s in steps) for action in ("apply", "skip", "reapply")}
    return (
        f"{count['apply']} migration(s) applied, {count['skip']} skipped (not for this edition), "
        f"{count['reapply']} view and function file(s) applied"
    )


@app.command()
def down(ctx: typer.Context, dsn: DsnOption = None) -> None:
    """Stop the embedded cluster (fast shutdown). Does nothing if it is not running."""
    cluster = _embedded(ctx, dsn, "down")
    if not cluster.is_running():
        typer.echo("deribit-ts: the embedded cluster is not running", err=True)
        return
    cluster.down()
    typer.echo("deribit-ts: the embedded cluster stopped", err=True)


@app.command()
def status(ctx: typer.Context, dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """Show the server in use: versions, TimescaleDB edition, data size and migration state."""
    s = settings(ctx, dsn)
    report = _configured_status(s.dsn) if s.dsn else _embedded_status(s)
    if as_json:
        typer.echo(json.dumps(report, default=str))
    else:
        _print_status(report)


def _configured_status(dsn: str) -> dict:
    report: dict = {"server": "configured", "dsn": mask_password(dsn), "running": True}
    with connect(dsn, autocommit=True) as conn:
        report.update(_server_report(conn))
    return report


def _embedded_status(s: Settings) -> dict:
    cluster = Cluster(s.home)
    report = {"server": "embedded", **cluster.status(), "dsn": mask_password(cluster.url_if_known())}
    if report["running"]:
        with connect(cluster.url(), autocommit=True) as conn:
            report["migrations"] = migration_state(conn)
    return report


def _server_report(conn: psycopg.Connection) -> dict:
    info = server_info(conn)
    return {
        "postgres_version": info.postgres_version,
        "timescaledb_version": info.timescaledb_version,
        "edition": info.edition,
        "data_size_bytes": database_size(conn),
        "migrations": migration_state(conn),
    }


def _print_status(report: dict) -> None:
    rows: list[tuple[str, object]] = [("server", report["server"]), ("dsn", report.get("dsn"))]
    if report["server"] == "embedded":
        state = (
            f"running, pid {report['pid']}"
            if report["running"]
            else ("stopped" if report["initialized"] else "not set up (run `deribit-ts db up`)")
        )
        rows += [
            ("state", state),
            ("port", report.get("port")),
            ("data dir", report["data_dir"]),
            ("binaries", report.get("bindir")),
            ("log", report["log"]),
        ]
    if report["running"]:
        migrations = report["migrations"]
        rows += [
            ("postgresql", report["postgres_version"]),
            ("timescaledb", report["timescaledb_version"] or "not installed in this database"),
            ("edition", report["edition"] or "-"),
            ("data size", _human_size(report["data_size_bytes"])),
            ("migrations", _describe_migrations(migrations)),
        ]
    for label, value in rows:
        typer.echo(f"{label:12} {value if value is not None else '-'}")


def _describe_migrations(state: dict) -> str:
    applied = f"{state['applied']} applied, {state['skipped']} skipped (latest: {state['latest'] or '-'})"
    if state["problem"]:
        return f"{applied}; {state['problem']}"
    todo = [f"{state['pending']} pending"]
    if state["views_changed"]:
        todo.append(f"{state['views_changed']} view file(s) changed")
    hint = " - run `deribit-ts db migrate`" if state["pending"] or state["views_changed"] else ""
    return f"{applied}, {', '.join(todo)}{hint}"


def _human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


@app.command()
def url(
    ctx: typer.Context,
    dsn: DsnOption = None,
    superuser: Annotated[
        bool,
        typer.Option(
            "--superuser",
            help="The embedded cluster's superuser instead of its owner: only for restoring a backup "
            "(deribit-ts itself never needs it).",
        ),
    ] = False,
) -> None:
    """Print the DSN in use (with its password): the configured one, else the embedded cluster's owner's (a role
    that owns the database and is no superuser)."""
    s = settings(ctx, dsn)
    if superuser:
        typer.echo(_embedded(ctx, dsn, "url --superuser").superuser_url())
        return
    typer.echo(s.dsn or Cluster(s.home).url())


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context, dsn: DsnOption = None) -> None:
    """Open psql on the embedded cluster; extra arguments go to psql (e.g. `db psql -- -c 'SELECT 1'`)."""
    cluster = _embedded(ctx, dsn, "psql")
    if not cluster.is_running():
        raise UserError("the embedded cluster is not running; start it with `deribit-ts db up`")
    conninfo = psycopg.conninfo.conninfo_to_dict(cluster.url())
    # The password travels in the environment, not on the command line where `ps` would show it.
    env = {**os.environ, "PGPASSWORD": str(conninfo.pop("password"))}
    executable = _psql_executable(cluster)
    target = psycopg.conninfo.make_conninfo(**conninfo)
    os.execve(executable, [executable, target, *ctx.args], env)


def _psql_executable(cluster: Cluster) -> str:
    bindir = cluster.bindir()
    if bindir and (bindir / "psql").is_file():
        return str(bindir / "psql")
    system = shutil.which("psql")
    if system is None:
        raise UserError("psql not found; run `deribit-ts db up` first, which installs it with the server")
    return system


@app.command()
def logs(
    ctx: typer.Context,
    dsn: DsnOption = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=0, max=1_000_000, help="How many last lines to print.")
    ] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Print new lines until Ctrl-C.")] = False,
) -> None:
    """Print the end of the embedded cluster's server log."""
    log_path = _embedded(ctx, dsn, "logs").log_path()
    if not log_path.is_file():
        raise UserError(f"no server log yet at {log_path}; run `deribit-ts db up` first")
    with open(log_path, errors="replace") as handle:
        for line in deque(handle, maxlen=lines):
            typer.echo(line, nl=False)
        handle.seek(0, os.SEEK_END)
        if follow:
            _follow(handle)


def _follow(handle: TextIO) -> None:
    """Print what the server appends until Ctrl-C, which ends the command normally."""
    try:
        while True:
            chunk = handle.read()
            if chunk:
                typer.echo(chunk, nl=False)
            else:
                time.sleep(0.5)
    except KeyboardInterrupt:
        return


@app.command()
def size(ctx: typer.Context, dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """Per hypertable: rows, bytes on disk, bytes per row, and (Community edition) the compression ratio."""
    with connect(database_dsn(settings(ctx, dsn)), autocommit=True) as conn:
        report = storage.storage_report(conn)
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    typer.echo(
        f"{'hypertable':36} {'rows':>12} {'size':>10} {'B/row':>8} {'chunks':>7} {'compressed':>10} {'ratio':>6}"
    )
    for r in report:
        ratio = f"{r['compression_ratio']:.1f}x" if r["compression_ratio"] else "-"
        per_row = f"{r['bytes_per_row']:.1f}" if r["bytes_per_row"] is not None else "-"
        typer.echo(
            f"{r['hypertable']:36} {r['rows']:>12,} {_human_size(r['total_bytes']):>10} {per_row:>8} "
            f"{r['chunks']:>7} {r['compressed_chunks']:>10} {ratio:>6}"
        )


@app.command()
def compress(ctx: typer.Context, dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """Compress now what the columnstore policies would (chunks older than the window the collector still
    revises). Community edition only: on Apache it says so and exits 0 (there is nothing to compress)."""
    with connect(database_dsn(settings(ctx, dsn)), autocommit=True) as conn:
        if not storage.has_tsl(conn):
            message = "compression is not available on the TimescaleDB Apache edition: nothing to do"
            typer.echo(
                json.dumps({"available": False, "message": message}) if as_json else f"deribit-ts: {message}",
                err=not as_json,
            )
            return
        summary = storage.compress_due(conn)
    if as_json:
        typer.echo(json.dumps({"available": True, **summary}))
    else:
        typer.echo(
            f"ran {summary['jobs']} columnstore policy job(s): compressed chunks "
            f"{summary['chunks_before']} -> {summary['chunks_after']}"
        )


@app.command()
def jobs(ctx: typer.Context, dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """List the Timescale background jobs (rollup refresh, compression) with their last run and status."""
    with connect(database_dsn(settings(ctx, dsn)), autocommit=True) as conn:
        tsl = storage.has_tsl(conn)
        listed = storage.jobs(conn) if tsl else []
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "edition": "timescale" if tsl else "apache",
                    "jobs": listed,
                    "note": None if tsl else storage.APACHE_SCHEDULER_NOTE,
                },
                default=str,
            )
        )
        return
    if not tsl:
        typer.echo(storage.APACHE_SCHEDULER_NOTE)
        return
    typer.echo(f"{'id':>5} {'job':44} {'every':>10} {'last run':25} {'status':8} {'next start':25}")
    for j in listed:
        what = j["proc"] + (f" ({j['target']})" if j["target"] else "")
        typer.echo(
            f"{j['job_id']:>5} {what[:44]:44} {j['schedule_interval']:>10} "
            f"{str(j['last_run_started_at'] or 'never')[:25]:25} {str(j['last_run_status'] or '-'):8} "
            f"{str(j['next_start'] or '-')[:25]:25}"
        )


@app.command()
def reader(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The role's name: lower-case letters, digits and _ (e.g. analyst).")],
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create (or renew) a login role that can read schema deribit and nothing else; print its DSN once.

    The password is generated and appears only in that DSN (it is stored nowhere else). Run it again for an
    existing reader to renew its grants and rotate its password (the old one stops working)."""
    from deribit_ts.db.roles import check_name, ensure_reader

    check_name(name)  # before starting a cluster for nothing
    # (on the embedded cluster, roles are made by its superuser: the owner deribit-ts runs as may not)
    made = ensure_reader(database_dsn(settings(ctx, dsn), superuser=True), name)
    what = (
        f"created read-only role {made.role}"
        if made.created
        else f"role {made.role} existed: renewed its grants and rotated its password (the old one no longer works)"
    )
    typer.echo(f"deribit-ts: {what}; its DSN (shown only now) is on stdout", err=True)
    if as_json:
        typer.echo(
            json.dumps({"role": made.role, "dsn": made.dsn, "created": made.created, "rotated": not made.created})
        )
    else:
        typer.echo(made.dsn)


from deribit_ts.cli import db_migrate  # noqa: E402  (it registers `db migrate` on this app)

db_migrate.register(app)
