"""Options and helpers shared by the command modules."""

from __future__ import annotations

from typing import Annotated

import typer

from deribit_ts.config import Settings

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", envvar="DERIBIT_TS_DSN", help="PostgreSQL/TimescaleDB DSN (default: the embedded cluster).",
                 show_default=False),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option("--api-url", envvar="DERIBIT_TS_API_URL",
                 help="Deribit-compatible base URL, e.g. http://127.0.0.1:8765 for the simulator.",
                 show_default="https://www.deribit.com"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]


def settings(ctx: typer.Context, dsn: str | None = None, api_url: str | None = None) -> Settings:
    """Settings for one command: its own flags, then the global flags, then the environment."""
    root: Settings = ctx.find_root().obj or Settings.from_env()
    return Settings.from_env(dsn=dsn or root.dsn, api_url=api_url or root.api_url, home=root.home)


def database_dsn(s: Settings, *, start: bool = True) -> str:
    """The DSN to use: the configured one, else the embedded cluster's (started when needed)."""
    if s.dsn:
        return s.dsn
    from deribit_ts.db.embedded import Cluster

    cluster = Cluster(s.home)
    if start:
        cluster.up(quiet=True)
    return cluster.url()
