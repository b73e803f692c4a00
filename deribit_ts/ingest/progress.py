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

    def planned(self, dataset: str, open_tasks: dict[str, int]) -> None:
        """Open tasks per key (instrument or index) of a dataset, 0 for a key with nothing left to do."""

    def rows(self, dataset: str, rows: int) -> None:
        pass

    def task_done(self, dataset: str, key: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class RichReporter(Reporter):
    def __init__(self) -> None:
        self.console = Console(stderr=True)
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

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def planned(self, dataset: str, open_tasks: dict[str, int]) -> None:
        self.open[dataset] = {key: n for key, n in open_tasks.items() if n}
        self.key_totals[dataset] = len(open_tasks)  # every key planned; those without open tasks count as done
        self.counts[dataset] = 0
        self.bars[dataset] = self.progress.add_task(dataset, total=sum(open_tasks.values()), rows=0, rate=0.0,
                                                    keys=self._keys(dataset))

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
        self.console.print(text)
