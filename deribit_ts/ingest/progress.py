"""Progress of a backfill on stderr: one bar per dataset (tasks done/total, rows, rows/s, ETA).

When stderr is not a terminal (a file, a pipe, journald) bars cannot redraw, so a plain line per dataset is
printed every DERIBIT_TS_PROGRESS_INTERVAL seconds (default 5) and once at the end: a long run is never silent.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from deribit_ts.display import printable


class Reporter:
    """Silent by default; RichReporter draws bars."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def planned(self, dataset: str, open_tasks: dict[str, int]) -> None:
        """Open tasks per key (instrument or index) of a dataset, 0 for a key with nothing left to do."""

    def rows(self, dataset: str, rows: int) -> None:
        pass

    def task_done(self, dataset: str, key: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


PROGRESS_INTERVAL_ENV = "DERIBIT_TS_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL_S = 5.0


def progress_interval() -> float:
    """Seconds between plain progress lines (DERIBIT_TS_PROGRESS_INTERVAL, a positive number)."""
    from deribit_ts.errors import UserError

    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_PROGRESS_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 86_400:
        raise UserError(
            f"{PROGRESS_INTERVAL_ENV}={raw[:40]!r} is not a number of seconds from 0.1 to 86400: fix or unset it"
        )
    return value


class RichReporter(Reporter):
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.interval = progress_interval() if self.plain else 0.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("tasks {task.fields[keys]:>7} keys {task.fields[rows]:>11,} rows {task.fields[rate]:>8,.0f}/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.bars: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.open: dict[str, dict[str, int]] = {}  # dataset -> key -> tasks left
        self.key_totals: dict[str, int] = {}
        self.started = time.monotonic()
        # (dataset, tasks) whose finished plain line is printed: not repeated (a dataset given more tasks is news)
        self._reported_done: set[tuple[str, float]] = set()

    def __enter__(self) -> RichReporter:
        if self.plain:
            self._ticker = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._ticker.start()
        else:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.plain:
            self.progress.stop()
            return
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self._print_lines()  # where every dataset ended

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._print_lines()

    def _print_lines(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        for task in list(self.progress.tasks):
            if (task.description, task.total) in self._reported_done:
                continue
            if task.total is not None and task.completed >= task.total:
                self._reported_done.add((task.description, task.total))
            rows = task.fields["rows"]
            self.console.print(
                plain_line(
                    task.description,
                    int(task.completed),
                    int(task.total or 0),
                    task.fields["keys"],
                    rows,
                    rows / elapsed,
                    task.time_remaining,
                ),
                highlight=False,
                soft_wrap=True,
            )

    def planned(self, dataset: str, open_tasks: dict[str, int]) -> None:
        self.open[dataset] = {key: n for key, n in open_tasks.items() if n}
        self.key_totals[dataset] = len(open_tasks)  # every key planned; those without open tasks count as done
        self.counts[dataset] = 0
        self.bars[dataset] = self.progress.add_task(
            dataset, total=sum(open_tasks.values()), rows=0, rate=0.0, keys=self._keys(dataset)
        )

    def _keys(self, dataset: str) -> str:
        """Keys (instruments, indexes) with nothing left to do, out of every key planned (what coverage counts)."""
        total = self.key_totals[dataset]
        return f"{total - len(self.open[dataset])}/{total}"

    def rows(self, dataset: str, rows: int) -> None:
        self.counts[dataset] = self.counts.get(dataset, 0) + rows
        elapsed = max(time.monotonic() - self.started, 1e-6)
        if dataset in self.bars:
            self.progress.update(self.bars[dataset], rows=self.counts[dataset], rate=self.counts[dataset] / elapsed)

    def task_done(self, dataset: str, key: str) -> None:
        if dataset not in self.bars:
            return
        left = self.open[dataset]
        if key in left:
            left[key] -= 1
            if left[key] <= 0:
                del left[key]
        self.progress.update(self.bars[dataset], advance=1, keys=self._keys(dataset))

    def message(self, text: str) -> None:
        self.console.print(printable(text), markup=False, highlight=False)


def plain_line(
    dataset: str, done: int, total: int, keys: str, rows: int, rate: float, remaining_s: float | None
) -> str:
    """One progress line for logs: 'candles: 120/300 tasks, 4/12 keys, 1,234,567 rows, 45,000 rows/s, ETA 0:03:12'."""
    eta = str(timedelta(seconds=round(remaining_s))) if remaining_s is not None and done < total else "-"
    return f"deribit-ts: {dataset}: {done:,}/{total:,} tasks, {keys} keys, {rows:,} rows, {rate:,.0f} rows/s, ETA {eta}"
