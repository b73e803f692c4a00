"""The ``deribit-ts`` command line. Command modules are thin: they parse, call the library, print."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from deribit_ts import __version__
from deribit_ts.cli.common import ApiUrlOption, DsnOption, JsonOption, settings
from deribit_ts.config import DEFAULT_MAX_RETRIES, DEFAULT_WORKERS, Settings, env_int, mask_password
from deribit_ts.errors import UserError

app = typer.Typer(
    name="deribit-ts",
    help="Keep a complete, research-ready history of Deribit market data in TimescaleDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deribit-ts {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    dsn: DsnOption = None,
    api_url: ApiUrlOption = None,
    home: Annotated[Path | None, typer.Option("--home", envvar="DERIBIT_TS_HOME",
                                              help="Where the embedded cluster lives.",
                                              show_default="~/.local/share/deribit-ts")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output on stderr.")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if verbose == 0:
        # psycopg warns about every query it cancels when Ctrl-C stops the workers: expected, not news.
        logging.getLogger("psycopg").setLevel(logging.ERROR)
    ctx.obj = Settings.from_env(dsn=dsn, api_url=api_url, home=home)


@app.command("config")
def config_cmd(ctx: typer.Context, dsn: DsnOption = None, api_url: ApiUrlOption = None,
               as_json: JsonOption = False) -> None:
    """Print the effective settings (passwords masked)."""
    s = settings(ctx, dsn, api_url)
    effective = {
        "dsn": mask_password(s.dsn) if s.dsn else None,
        "dsn_source": "configured" if s.dsn else "embedded cluster",
        "api_url": s.api_url,
        "home": str(s.home),
    }
    from deribit_ts.db.embedded import Cluster
    from deribit_ts.exchange.limiter import CreditLimiter

    cluster = Cluster(s.home)
    if s.dsn is None:
        effective["embedded_dsn"] = mask_password(cluster.url_if_known())
    effective["pg_prefix"] = str(cluster.prefix)
    effective["workers"] = env_int("DERIBIT_TS_WORKERS", DEFAULT_WORKERS, minimum=1)
    effective["rate_limit"] = CreditLimiter.from_env().describe()
    effective["max_retries"] = env_int("DERIBIT_TS_MAX_RETRIES", DEFAULT_MAX_RETRIES)
    if as_json:
        typer.echo(json.dumps(effective))
    else:
        for key, value in effective.items():
            typer.echo(f"{key:14} {value if value is not None else '-'}")


def _register_subcommands() -> None:
    # Each command module owns one noun of the CLI.
    from deribit_ts.cli import backfill, coverage, db, runs, sim

    app.add_typer(db.app, name="db")
    app.add_typer(backfill.app, name="backfill")
    app.add_typer(sim.app, name="sim")
    runs.register(app)
    coverage.register(app)


_register_subcommands()


def _terminate(signum, frame) -> None:
    # systemd and `kill` stop us with SIGTERM: wind down exactly as on Ctrl-C (leases released, run logged).
    raise KeyboardInterrupt


def main() -> None:
    """Console entry point: runs the app, turning expected failures into one line on stderr."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        # Not standalone: Typer would print usage errors as a framed box; they get our one line instead.
        status = app(standalone_mode=False)
    except typer.TyperException as exc:  # bad CLI input: an unknown option, a value out of range, ...
        message = _usage_message(exc)
        if message:  # (a group called without a command has printed its help and has nothing to add)
            typer.echo(f"deribit-ts: error: {message}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except UserError as exc:
        typer.echo(f"deribit-ts: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("deribit-ts: interrupted", err=True)
        sys.exit(130)
    except psycopg.errors.UndefinedTable as exc:
        typer.echo(f"deribit-ts: error: {_first_line(exc)} (this database has no deribit-ts schema, or an older "
                   "one: run `deribit-ts db migrate`)", err=True)
        sys.exit(2)
    except psycopg.Error as exc:  # the last net: whatever the database refused, one line and no traceback
        typer.echo(f"deribit-ts: error: database error: {_first_line(exc)}", err=True)
        sys.exit(2)
    except OSError as exc:  # a file or directory the user pointed at is unusable (permissions, full disk, ...)
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"deribit-ts: error: {exc.strerror or _first_line(exc)}{where} (check the path and its "
                   "permissions, e.g. DERIBIT_TS_HOME)", err=True)
        sys.exit(2)
    if isinstance(status, int) and status:  # a command's typer.Exit(code), or Ctrl-C (130)
        sys.exit(status)


def _usage_message(exc: typer.TyperException) -> str:
    format_message = getattr(exc, "format_message", None)
    message = " ".join((format_message() if format_message else str(exc)).split())
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see `{ctx.command_path} --help`)" if message and ctx is not None else message


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
