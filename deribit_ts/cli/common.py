"""Options and helpers shared by the command modules.

Input rules every command follows (the hostile-input test in tests/test_cli_hostile.py holds them):
- Check every value at the top of the command, before connecting to anything: `since_until`, `names`,
  `text` (re-exported from deribit_ts.validate) raise UsageError, which main() prints as one line, exit 2.
- Give every int option min= and max= (a huge number must be refused, not overflow later).
- Use DsnOption / ApiUrlOption / WorkersOption from here and `settings()` for the effective values: they check
  the DSN and URL (parsed, password remembered so no message echoes it) and parse DERIBIT_TS_WORKERS once.
- main() refuses any blank or control-character string value of any option or argument on its own; a command
  need not check for "" itself, but must not give meaning to one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from deribit_ts.config import WORKERS, Settings
from deribit_ts.errors import UsageError
from deribit_ts.timeutil import check_order
from deribit_ts.validate import names, shown, text, timestamp, whole_number  # noqa: F401 (re-exported)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="DERIBIT_TS_DSN",
        help="PostgreSQL/TimescaleDB DSN (default: the embedded cluster).",
        show_default=False,
    ),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="DERIBIT_TS_API_URL",
        help="Deribit-compatible base URL, e.g. http://127.0.0.1:8765 for the simulator.",
        show_default="https://www.deribit.com",
    ),
]
HistoryUrlOption = Annotated[
    str | None,
    typer.Option(
        "--history-url",
        envvar="DERIBIT_TS_HISTORY_URL",
        help="Where trades of every instrument, expired ones included, are fetched (default: the --api-url when "
        "one is set, else https://history.deribit.com).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]


def _workers(raw: object) -> int:
    # The same parser as `config` uses for DERIBIT_TS_WORKERS (one parser per setting); Typer names the flag.
    try:
        return WORKERS.parse(raw)
    except UsageError:
        raise typer.BadParameter(
            f"{shown(raw)} is not a whole number from {WORKERS.minimum} to {WORKERS.maximum}"
        ) from None


WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        envvar=WORKERS.env,
        parser=_workers,
        show_default=str(WORKERS.default),
        help=f"Concurrent tasks in this process ({WORKERS.minimum}-{WORKERS.maximum}).",
    ),
]


def since_until(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """--since/--until checked: each None (not given) or an ISO time within bounds, since before until."""
    start, end = timestamp(since, "--since"), timestamp(until, "--until")
    check_order(start, end)
    return start, end


def settings(
    ctx: typer.Context, dsn: str | None = None, api_url: str | None = None, history_url: str | None = None
) -> Settings:
    """Settings for one command: its own flags, then the global flags, then the environment (each checked)."""
    root: Settings = ctx.find_root().obj or Settings.from_env()
    return Settings.from_env(
        dsn=dsn if dsn is not None else root.dsn,
        api_url=api_url if api_url is not None else (root.api_url if root.api_url_set else None),
        home=root.home,
        history_url=history_url,
    )


def database_dsn(s: Settings, *, start: bool = True, superuser: bool = False) -> str:
    """The DSN to use: the configured one, else the embedded cluster's (started when needed): its owner's, or
    with `superuser` its bootstrap superuser's (for what only it may do: creating roles)."""
    if s.dsn:
        return s.dsn
    from deribit_ts.db.embedded import Cluster

    cluster = Cluster(s.home)
    if start:
        cluster.up(quiet=True)
    return cluster.superuser_url() if superuser else cluster.url()
