"""The README's shell examples run as written and show what they say.

Every ```sh block of README.md runs, in order, in one bash session (so `export` and `&` carry over as in a
terminal), against a migrated database (DERIBIT_TS_DSN) with the installed `deribit-ts` and `psql` on PATH. A
block preceded by `<!-- not run by tests/test_readme.py: REASON -->` is skipped (the quickstart itself: it
installs everything). The simulator the README starts on port 8765 is started on a free port instead, the only
change made to the text.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = re.compile(r"<!-- not run by tests/test_readme\.py: (?P<reason>\S.*?) -->")
README_PORT = "8765"


def fenced_blocks(text: str) -> list[tuple[str, str, str]]:
    """(info string, body, the line before the opening fence) of every fenced block, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, before, body = lines[i][3:].strip(), lines[i - 1] if i else "", []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((info, "\n".join(body) + "\n", before))
        i += 1
    return blocks


def shell_blocks(text: str) -> list[tuple[str, str | None]]:
    """(body, the reason it is skipped, or None) of every ```sh block, in order."""
    blocks = []
    for info, body, before in fenced_blocks(text):
        if info == "sh":
            skip = SKIP.search(before)
            blocks.append((body, skip["reason"] if skip else None))
    return blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_has_examples_and_says_why_it_skips_any():
    blocks = shell_blocks(README.read_text())
    assert len([b for b, reason in blocks if reason is None]) >= 2
    assert all(reason for b, reason in blocks if reason is not None)
    # Every fenced block is either runnable shell (```sh) or says what it is: nothing runs by accident.
    infos = {info for info, body, before in fenced_blocks(README.read_text())}
    assert infos <= {"sh", "python", "text", "sql", "console"}, infos


@pytest.mark.slow
def test_every_shell_example_of_the_readme_runs(new_db, tmp_path):
    port = str(free_port())
    script = "\n".join(
        body.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}").replace(f"--port {README_PORT}", f"--port {port}")
        for body, reason in shell_blocks(README.read_text())
        if reason is None
    )
    bindir = Path(sys.executable).parent  # the venv's: `deribit-ts` as installed
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DERIBIT_TS_")},
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DERIBIT_TS_DSN": new_db,
        "DERIBIT_TS_HOME": str(tmp_path / "home"),
    }
    if os.environ.get("DERIBIT_TS_PG_PREFIX"):
        env["DERIBIT_TS_PG_PREFIX"] = os.environ["DERIBIT_TS_PG_PREFIX"]
    if shutil.which("psql", path=env["PATH"]) is None:
        pytest.skip("no psql on PATH (the bootstrap links one into .venv/bin)")
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    # Output to files, not pipes: the simulator started with `&` would hold a pipe open after bash ends.
    with out_path.open("w") as out_file, err_path.open("w") as err_file:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=out_file,
            stderr=err_file,
            start_new_session=True,  # the simulator the README starts with `&` is in this group: stopped below
        )
        try:
            process.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    out, err = out_path.read_text(), err_path.read_text()
    assert process.returncode == 0, f"the README's examples failed (exit {process.returncode}):\n{err[-3000:]}"
    # What the examples say they show: the last five hours of the day the query asks for, newest first.
    rows = [line for line in out.splitlines() if line.strip().startswith("BTC-PERPETUAL") and "|" in line]
    assert len(rows) == 5 and all("| 2024-01-07 " in row for row in rows), out[-3000:]
    assert "| 2024-01-07 23:00:00" in rows[0]
    assert (tmp_path / "btc_1h.csv").read_text().count("BTC-PERPETUAL") == 7 * 24
