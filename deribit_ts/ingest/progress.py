"""Progress of a backfill on stderr: one bar per dataset (tasks done/total, rows, rows/s, ETA)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Reporter:
    """Silent by default; RichReporter draws bars."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def planned(self, dataset: str, tasks: int) -> None:
        pass

    def rows(self, dataset: str, rows: int) -> None:
        pass

    def task_done(self, dataset: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class RichReporter(Reporter):
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks  {task.fields[rows]:>12,} rows  {task.fields[rate]:>9,.0f} rows/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.bars: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def planned(self, dataset: str, tasks: int) -> None:
        if dataset not in self.bars:
            self.bars[dataset] = self.progress.add_task(dataset, total=0, rows=0, rate=0.0)
            self.counts[dataset] = 0
        self.progress.update(self.bars[dataset], total=tasks)

    def rows(self, dataset: str, rows: int) -> None:
        self.counts[dataset] = self.counts.get(dataset, 0) + rows
        elapsed = max(time.monotonic() - self.started, 1e-6)
        if dataset in self.bars:
            self.progress.update(self.bars[dataset], rows=self.counts[dataset], rate=self.counts[dataset] / elapsed)

    def task_done(self, dataset: str) -> None:
        if dataset in self.bars:
            self.progress.advance(self.bars[dataset])

    def message(self, text: str) -> None:
        self.console.print(text)
