"""The help a new user reads: fast (no heavy import), an example in every command, -v anywhere."""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys

import pytest
import typer

from deribit_ts import cli
from deribit_ts.cli.commands import COMMANDS
from deribit_ts.cli.examples import EXAMPLES_BY_PATH

HEAVY = ("psycopg", "ccxt", "numpy", "aiohttp", "sqlglot", "rich", "plotly")


def command_paths() -> list[tuple[str, ...]]:
    def walk(command, path):
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, (*path, name))
        return found

    return walk(typer.main.get_command(cli.app), ())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []], ids=" ".join)
def test_top_level_help_imports_no_heavy_module(argv):
    # The time a user waits for `deribit-ts --help` is mostly imports: none of the heavy ones may happen.
    probe = (
        "import sys; from deribit_ts.cli import run; code = run(sys.argv[1:]); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules)); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 2), result.stderr  # (no arguments: usage, exit 2)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_listing_follows_the_order_of_commands():
    result = subprocess.run(
        [sys.executable, "-m", "deribit_ts", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    listed = [
        line.split()[0]
        for line in result.stdout.split("Commands:")[1].split("Examples:")[0].splitlines()
        if line[:3].strip()
    ]
    assert listed == [entry.name for entry in COMMANDS] + ["config"]
    assert "<bool>" not in result.stdout and "Examples:" in result.stdout


def test_every_command_has_examples():
    paths = command_paths()
    assert set(paths) == set(EXAMPLES_BY_PATH), "add an example to deribit_ts/cli/examples.py"


@pytest.mark.parametrize(
    "example",
    [e for examples in EXAMPLES_BY_PATH.values() for e in examples if e.startswith("deribit-ts ")],
)
def test_every_example_parses(example):
    """Each example names existing commands and options with acceptable values (parsed, not run)."""
    words = shlex.split(example)[1:]
    command, path = typer.main.get_command(cli.app), ["deribit-ts"]
    while getattr(command, "commands", None) is not None and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    assert getattr(command, "commands", None) is None, f"{example}: names no command"
    with command.make_context(" ".join(path), words):
        pass


def test_every_command_shows_its_examples_in_its_help():
    root = typer.main.get_command(cli.app)
    assert "deribit-ts backfill all" in (root.epilog or "")
    for path in command_paths()[1:]:
        command = root
        for name in path:
            command = command.commands[name]
        assert EXAMPLES_BY_PATH[path][0] in command.epilog, path


def test_verbose_after_the_subcommand(capsys):
    try:
        assert cli.run(["config", "--json", "-v"]) == 0
        assert logging.getLogger().level == logging.INFO
        assert cli.run(["-v", "config", "--json", "-v"]) == 0
        assert logging.getLogger().level == logging.DEBUG
    finally:
        logging.getLogger().setLevel(logging.WARNING)


def test_coverage_help_names_every_dataset():
    from deribit_ts.cli.coverage import COVERED_DATASETS
    from deribit_ts.ingest.backfill import DATASETS

    assert set(COVERED_DATASETS) == set(DATASETS) - {"instruments"}
