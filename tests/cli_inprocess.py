"""Running the CLI in-process (deribit_ts.cli.run) with a deadline: fast enough to try thousands of command lines.

A command still running at its deadline is interrupted by SIGALRM (a BaseException, so the command's own
`except Exception` does not swallow it) and reported as timed out; os.exec* are refused for the duration.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import pytest

import deribit_ts.ingest.backfill  # noqa: F401  (imported up front: a deadline must not interrupt an import)
import deribit_ts.sim  # noqa: F401
from deribit_ts import cli


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    timed_out: bool


class Deadline(BaseException):
    """The invocation ran past its time."""


def _alarm(signum, frame):
    raise Deadline


@pytest.fixture
def invoke(capsys, monkeypatch):
    """invoke(argv, timeout) -> Outcome."""

    def refuse_exec(*args, **kwargs):
        raise AssertionError(f"a command tried to exec {args[:1]} in-process")

    for name in ("execv", "execve", "execvp", "execvpe", "execl", "execlp"):
        monkeypatch.setattr(os, name, refuse_exec)
    previous = signal.signal(signal.SIGALRM, _alarm)

    def run(argv: list[str], timeout: float) -> Outcome:
        capsys.readouterr()
        timed_out, code = False, None
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            code = cli.run(argv)
        except Deadline:
            timed_out = True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err, timed_out)

    yield run
    signal.signal(signal.SIGALRM, previous)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
