"""The command tree, loaded lazily: `deribit-ts --help` and `--version` import no command module.

Each command module pulls in its library (psycopg, ccxt, numpy, aiohttp, ...): importing them all took 1.5-2 s
before a single line of help appeared. The root group below knows each top-level command's name, module and
one-line summary, and imports a module only when its command is run or its help is asked for. The order of
COMMANDS is the order of `deribit-ts --help`: the order a new user meets them in.

A command module either has `app` (a Typer group: `deribit-ts NAME SUBCOMMAND`) or `register(app)` (adds its
commands to the Typer app it is given). tests/test_cli.py checks each summary against the command's own help.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import typer
import typer.core


@dataclass(frozen=True)
class Entry:
    name: str
    module: str
    summary: str  # the command's short help in `deribit-ts --help` (its first sentence)


COMMANDS: tuple[Entry, ...] = (
    Entry("db", "deribit_ts.cli.db", "Run the embedded PostgreSQL + TimescaleDB; inspect the database."),
    Entry("sim", "deribit_ts.cli.sim", "The Deribit simulator: a deterministic local exchange."),
    Entry("backfill", "deribit_ts.cli.backfill", "Backfill history from the exchange (resumable, idempotent)."),
    Entry("snapshot", "deribit_ts.cli.snapshot", "Snapshot live data the exchange cannot give back later."),
    Entry("collect", "deribit_ts.cli.collect", "Keep every dataset current until stopped."),
    Entry("status", "deribit_ts.cli.status", "Per dataset the newest data, its lag and errors; the leader."),
    Entry("coverage", "deribit_ts.cli.coverage", "Coverage of every backfilled dataset and key."),
    Entry("runs", "deribit_ts.cli.runs", "Show the run log: rows, requests, retries and errors per run."),
    Entry("report", "deribit_ts.cli.report", "Show what the research views say."),
    Entry("export", "deribit_ts.cli.export", "Write a view or a query to Parquet, CSV or JSON lines."),
    Entry("refresh", "deribit_ts.cli.refresh", "Bring the rollups (ohlcv_5m ... ohlcv_1d) up to date."),
    Entry("backup", "deribit_ts.cli.backup", "Back up the database: a pg_dump and a verifying manifest."),
    Entry("restore", "deribit_ts.cli.backup", "Restore a backup into an empty database and verify it."),
)


def load(entry: Entry) -> Any:
    # (a click command or group: Typer vendors click, so its classes are not a public type to name here)
    """The click command of one top-level entry, built afresh (callers wrap its parameters)."""
    module = importlib.import_module(entry.module)
    holder = typer.Typer(rich_markup_mode=None)  # plain help: it wraps paragraphs and needs no rich
    if hasattr(module, "register"):
        module.register(holder)
    else:
        holder.add_typer(module.app, name=entry.name)
    command = typer.main.get_group(holder).commands[entry.name]
    command.short_help = entry.summary  # one summary, whether the listing has loaded the command or not
    return command


class LazyCommands(MutableMapping):
    """The root group's commands: eager ones (defined in deribit_ts.cli) plus the entries of COMMANDS, each
    loaded on first access and then passed through `prepare` (which hardens its parameters)."""

    def __init__(self, eager: Mapping, prepare: Callable) -> None:
        self._entries = {entry.name: entry for entry in COMMANDS}
        self._loaded: dict = {}
        self._eager = {name: prepare(command) for name, command in eager.items()}
        self._prepare = prepare

    def summary(self, name: str) -> str | None:
        entry = self._entries.get(name)
        return entry.summary if entry is not None and name not in self._loaded else None

    def __getitem__(self, name: str):
        if name in self._eager:
            return self._eager[name]
        if name not in self._loaded:
            entry = self._entries[name]  # KeyError for an unknown name, as a dict would
            self._loaded[name] = self._prepare(load(entry))
        return self._loaded[name]

    def __setitem__(self, name: str, command) -> None:
        self._eager[name] = command

    def __delitem__(self, name: str) -> None:
        self._eager.pop(name, None) or self._entries.pop(name)

    def __iter__(self) -> Iterator[str]:
        yield from self._entries
        yield from (name for name in self._eager if name not in self._entries)

    def __len__(self) -> int:
        return len(set(self._entries) | set(self._eager))


class _Summary:
    """Stands in for a not-yet-loaded command in the root's help listing (only its name and summary are read)."""

    hidden = False

    def __init__(self, name: str, summary: str) -> None:
        self.name = name
        self.summary = summary

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.summary


class LazyGroup(typer.core.TyperGroup):
    """The root `deribit-ts` group; its commands are a LazyCommands (see the module's docstring)."""

    prepare: Callable = staticmethod(lambda command: command)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = LazyCommands(self.commands, self.prepare)
        self.commands = self.lazy

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's would load every command

    def format_commands(self, ctx, formatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            summary = self.lazy.summary(name)
            command = _Summary(name, summary) if summary is not None else self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
