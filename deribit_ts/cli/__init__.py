"""The ``deribit-ts`` command line. Command modules are thin: they parse, call the library, print."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Annotated

import typer

from deribit_ts import __version__
from deribit_ts.cli.commands import LazyGroup
from deribit_ts.cli.common import ApiUrlOption, DsnOption, JsonOption, settings
from deribit_ts.cli.examples import EXAMPLES_BY_PATH, epilog
from deribit_ts.config import (
    MAX_REPLY_MB,
    MAX_RETRIES,
    WORKERS,
    MaskingFormatter,
    Settings,
    install_log_masking,
    mask_password,
)
from deribit_ts.display import printable
from deribit_ts.errors import UserError
from deribit_ts.validate import CONTROL_CHARS, shown, text


class _Root(LazyGroup):
    @staticmethod
    def prepare(command):
        _harden(command, (command.name,))
        return command


app = typer.Typer(
    cls=_Root,
    name="deribit-ts",
    help="Keep a complete, research-ready history of Deribit market data in TimescaleDB.",
    epilog=epilog(EXAMPLES_BY_PATH[()]),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: paragraphs wrap, flags show no type, and rich is not imported
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
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            envvar="DERIBIT_TS_HOME",
            help="Where the embedded cluster lives.",
            show_default="~/.local/share/deribit-ts",
        ),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="More log output on stderr (-vv: debug).", show_default=False),
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.meta["verbose"] = verbose
    _setup_logging(verbose)
    ctx.obj = Settings.from_env(
        dsn=dsn, api_url=api_url, home=Path(text(home, "--home / DERIBIT_TS_HOME")).expanduser() if home else None
    )


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each record (not as it was at start-up: tests swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(verbose: int) -> None:
    """Logs go to stderr, every record masked (install_log_masking) whichever handler writes it."""
    install_log_masking()
    handler = _StderrHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # force: a second invocation in one process (tests run main() in-process) logs to its own stderr.
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), handlers=[handler], force=True)
    # psycopg warns about every query it cancels when Ctrl-C stops the workers: expected, not news.
    logging.getLogger("psycopg").setLevel(logging.ERROR if verbose == 0 else logging.NOTSET)


@app.command("config")
def config_cmd(
    ctx: typer.Context, dsn: DsnOption = None, api_url: ApiUrlOption = None, as_json: JsonOption = False
) -> None:
    """Print the effective settings (passwords masked)."""
    s = settings(ctx, dsn, api_url)
    effective = {
        "dsn": mask_password(s.dsn),
        "dsn_source": "configured" if s.dsn else "embedded cluster",
        "api_url": mask_password(s.api_url),
        "history_url": mask_password(s.history_url),
        "home": str(s.home),
    }
    from deribit_ts.db.embedded import Cluster
    from deribit_ts.exchange.limiter import CreditLimiter

    cluster = Cluster(s.home)
    if s.dsn is None:
        effective["embedded_dsn"] = mask_password(cluster.url_if_known())
    effective["pg_prefix"] = str(cluster.prefix)
    effective["workers"] = WORKERS.from_env()
    effective["rate_limit"] = CreditLimiter.from_env().describe()
    effective["max_retries"] = MAX_RETRIES.from_env()
    effective["max_reply_mb"] = MAX_REPLY_MB.from_env()
    if as_json:
        typer.echo(json.dumps(effective))
    else:
        for key, value in effective.items():
            typer.echo(f"{key:14} {value if value is not None else '-'}")


def _more_verbose(ctx: typer.Context, value: int) -> None:
    """-v given after the subcommand counts as if given before it (`deribit-ts backfill all -v`)."""
    if value:
        root = ctx.find_root()
        root.meta["verbose"] = root.meta.get("verbose", 0) + value
        _setup_logging(root.meta["verbose"])


def _verbose_option():
    """A fresh -v/--verbose parameter for one subcommand (built by Typer from a probe, like every other option)."""
    probe = typer.Typer()

    @probe.command()
    def _probe(
        verbose: Annotated[
            int,
            typer.Option(
                "--verbose",
                "-v",
                count=True,
                expose_value=False,
                callback=_more_verbose,
                help="More log output on stderr (-vv: debug).",
                show_default=False,
            ),
        ] = 0,
    ) -> None:
        pass

    return typer.main.get_command(probe).params[0]


def _terminate(signum, frame) -> None:
    # systemd and `kill` stop us with SIGTERM: wind down exactly as on Ctrl-C (leases released, run logged).
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning expected failures into one line on stderr."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run one command line (default: sys.argv) and return its exit status. Every failure leaves as ONE line
    on stderr, cut short and with every secret masked: this is the one exit of every error message."""
    install_log_masking()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        # Not standalone: Typer would print usage errors as a framed box; they get our one line instead.
        status = _command().main(args=argv, prog_name="deribit-ts", standalone_mode=False)
    except typer.TyperException as exc:  # bad CLI input: an unknown option, a value out of range, ...
        message = _usage_message(exc)
        if message:  # (a group called without a command has printed its help and has nothing to add)
            _error(message)
        return getattr(exc, "exit_code", 2)
    except UserError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:
        return _failed(exc)
    return status if isinstance(status, int) else 0  # a command's typer.Exit(code), or Ctrl-C (130)


def _failed(exc: Exception) -> int:
    """One line for an unexpected failure; its exit status."""
    # psycopg is imported by the commands that use it, never for --help: if it is not loaded, exc is not its.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.errors.UndefinedTable):
        _error(
            f"{_first_line(exc)} (this database has no deribit-ts schema, or an older one: run `deribit-ts db migrate`)"
        )
        return 2
    if psycopg is not None and isinstance(exc, psycopg.Error):  # whatever the database refused: one line
        from deribit_ts.db.connect import disk_full

        full = disk_full(exc, after="what was being written was rolled back")
        _error(str(full) if full is not None else f"database error: {_first_line(exc)}")
        return 2
    if isinstance(exc, OSError):  # a file or directory the user pointed at is unusable (permissions, full disk)
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or _first_line(exc)}{where} (check the path and its permissions, e.g. DERIBIT_TS_HOME)")
        return 2
    # A bug: still one line (masked), the traceback only on request.
    if os.environ.get("DERIBIT_TS_DEBUG"):
        traceback.print_exception(exc, file=_MaskedStream(sys.stderr))
    _error(
        f"internal error: {exc.__class__.__name__}: {_first_line(exc)} (a bug in deribit-ts: please "
        "report it; DERIBIT_TS_DEBUG=1 shows the traceback)"
    )
    return 70  # EX_SOFTWARE


ERROR_LINE_MAX_CHARS = 500  # an error line quotes input: cut what it echoes
ERROR_LINE_KEPT_END = 160  # what to do comes last in every message: a cut keeps it


def _error(message: str) -> None:
    _say(f"error: {message}")


def _say(message: str) -> None:
    typer.echo(f"deribit-ts: {one_line(message)}", err=True)


def one_line(message: str) -> str:
    """A message as one printable line, its password masked, at most about ERROR_LINE_MAX_CHARS: a longer one loses
    its middle (the input it quotes), never its end (what to do)."""
    line = printable(" ".join((mask_password(message) or "").split()))
    if len(line) <= ERROR_LINE_MAX_CHARS:
        return line
    head, tail = line[: ERROR_LINE_MAX_CHARS - ERROR_LINE_KEPT_END], line[-ERROR_LINE_KEPT_END:]
    return f"{head} ... ({len(line) - len(head) - len(tail):,} characters cut) ... {tail}"


class _MaskedStream:
    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> None:
        self._stream.write(mask_password(text) or "")


def _command():
    """The click command of the app, every parameter checked for blank values (see _refuse_blank)."""
    command = typer.main.get_command(app)
    _harden(command)
    return command


def _harden(command, path: tuple[str, ...] = ()) -> None:
    """Every parameter refuses blank values; every subcommand takes -v and shows its examples."""
    for param in getattr(command, "params", []):
        _refuse_blank(param)
        _name_value(param)
    if path:
        command.params.append(_verbose_option())
        if path in EXAMPLES_BY_PATH:
            command.epilog = epilog(EXAMPLES_BY_PATH[path])
    subs = getattr(command, "commands", None)  # a group (Typer vendors click: no isinstance)
    if isinstance(subs, dict):  # (the root's LazyCommands harden each command as it loads: see _Root)
        for name, sub in subs.items():
            _harden(sub, (*path, name))


def _name_value(param) -> None:
    """Show a value by its name (`--since SINCE`, `restore FILE`), not by its Python type (`<str>`, `{file}`)."""
    takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    if param.metavar is None and takes_value and param.name:
        param.metavar = param.name.upper()


def _refuse_blank(param) -> None:
    """An empty or blank value (from the command line or the parameter's environment variable) is a usage error
    for every option and argument of every command, and so are control characters: none means anything here,
    and taking "" as "the default" silently widened runs beyond what the user asked for."""
    process_value = param.process_value

    def checked(ctx, value):
        source = getattr(ctx.get_parameter_source(param.name), "name", "")
        envvar = param.envvar if isinstance(param.envvar, str) else None
        if source == "DEFAULT" and envvar and envvar in os.environ and not os.environ[envvar].strip():
            raise typer.BadParameter("set but empty: give it a value or unset it", ctx=ctx, param=param)
        if source in ("COMMANDLINE", "ENVIRONMENT"):
            for item in value if isinstance(value, list | tuple) else [value]:
                if isinstance(item, str) and not item.strip():
                    raise typer.BadParameter(
                        "an empty value is not allowed: give one, or leave the option out", ctx=ctx, param=param
                    )
                if isinstance(item, str) and CONTROL_CHARS.search(item):
                    raise typer.BadParameter(f"{shown(item)} contains control characters", ctx=ctx, param=param)
        return process_value(ctx, value)

    param.process_value = checked


def _usage_message(exc: typer.TyperException) -> str:
    format_message = getattr(exc, "format_message", None)
    message = " ".join((format_message() if format_message else str(exc)).split())
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see `{ctx.command_path} --help`)" if message and ctx is not None else message


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
