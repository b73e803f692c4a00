"""A fork server for `deribit-ts` command lines in tests: `python cli_forkserver.py SOCKET`.

Every exchange command imports ccxt, whose package imports each of the hundred exchanges it supports: about a
second of CPU per command line, and the suite runs a few hundred. This process imports the package once, then
forks a fresh child per command line: the child is a process of its own (its own pid, environment, working
directory, stdin/stdout/stderr, signals, exit status; its threads joined and atexit functions run at the end),
like the console script started by subprocess, only with the modules already loaded. Nothing about the command
itself is stood in for.

It is single-threaded (forking a threaded process is unsafe) and serves one request per connection:
  request  one JSON line: {"argv": [...], "env": {...}, "cwd": "...", "stdout": PATH, "stderr": PATH}
  replies  the child's pid, then its exit status as subprocess reports it (-N: killed by signal N), a line each
Between the fork server and each command's child sits a small monitor process (forked per request) that waits for
the child and reports its status: the server itself never waits, so requests from concurrent threads are served
at once. The server ends when the process that started it is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import signal
import socket
import sys
import threading
import traceback

# The modules a command line may import, loaded once here: not __main__ (it runs the CLI when imported).
PRELOAD_SKIP = {"deribit_ts.__main__"}


def preload() -> None:
    import deribit_ts

    for module in pkgutil.walk_packages(deribit_ts.__path__, "deribit_ts."):
        if module.name not in PRELOAD_SKIP:
            importlib.import_module(module.name)


def serve(path: str) -> None:
    parent = os.getppid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    print("ready", flush=True)
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            try:
                monitor(conn)  # never returns
            except SystemExit:  # the command's own process, ending by sys.exit: the interpreter's exit follows
                raise
            except BaseException:  # the monitor failed: it must never go on serving as a second server
                traceback.print_exc()
                os._exit(1)
        conn.close()


def monitor(conn: socket.socket) -> None:
    """In the monitor: start the request's child, report its pid, wait for it, report its exit status."""
    conn.settimeout(None)
    with conn.makefile("rb") as reader:
        request = json.loads(reader.readline())
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the child's own subprocesses must be waitable
    pid = os.fork()
    if pid == 0:
        conn.close()
        run_command(request)  # never returns
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):  # the test may have stopped listening (its timeout killed the child)
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    os._exit(0)


def run_command(request: dict) -> None:
    """In the child: become the command line's process, run it, exit as the console script would."""
    _redirect(0, os.devnull, os.O_RDONLY)
    _redirect(1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    _redirect(2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    from deribit_ts.cli import run

    code = run(sys.argv[1:])
    # What the interpreter does at exit that a command can notice (its threads joined, its atexit functions run,
    # its output flushed), without tearing down the hundreds of modules preloaded here: that takes longer than
    # most commands.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _redirect(fd: int, path: str, flags: int) -> None:
    opened = os.open(path, flags, 0o600)
    os.dup2(opened, fd)
    os.close(opened)


if __name__ == "__main__":
    preload()
    serve(sys.argv[1])
