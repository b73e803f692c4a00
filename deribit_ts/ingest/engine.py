"""The backfill workers: claim a task, fetch its windows, load them, repeat until the plan is done.

One process runs `workers` coroutines sharing one exchange client (so one rate limiter), each with its
own database connection. Any number of processes may work on the same plan: tasks are claimed with
SKIP LOCKED under a lease, and every window commits its rows together with the task's cursor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.connect import connect_async, server_reason
from deribit_ts.exchange.client import DeribitClient, Tally, current_tally
from deribit_ts.exchange.errors import ExchangeError, UnexpectedReplyError
from deribit_ts.ingest import candles, delivery, dvol, funding, index, options, tasks, trades
from deribit_ts.ingest.dataset import Dataset, RangedDataset, WholeDataset
from deribit_ts.ingest.progress import Reporter
from deribit_ts.ingest.tasks import Task
from deribit_ts.timeutil import from_ms, to_ms

log = logging.getLogger(__name__)

DATASET_BY_NAME: dict[str, Dataset] = {
    "candles": candles.DATASET,
    "funding": funding.DATASET,
    "dvol": dvol.DATASET,
    "trades": trades.DATASET,
    "index": index.DATASET,
    "delivery": delivery.DATASET,
}


def dataset_for(task: Task) -> Dataset:
    """The dataset that works a task: an option's candles keep their fillers out of the table (ingest/options.py)."""
    if task.dataset == "candles" and options.is_option(task.key):
        return options.OPTION_CANDLES
    if task.dataset == "trades":  # windows sized by how often the instrument trades
        return trades.for_key(task.key)
    return DATASET_BY_NAME[task.dataset]


IDLE_POLL_S = 1.0  # how often an idle worker looks for tasks released by dead workers


class LeaseLost(Exception):
    """Another worker took the task over (our lease had expired): drop it without writing."""


@dataclass
class EngineResult:
    failed: list[tuple[Task, str]] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        dsn: str,
        client: DeribitClient,
        run_id: int,
        instrument_ids: dict[str, int],
        now: datetime,
        reporter: Reporter,
        workers: int,
        history: DeribitClient | None = None,
    ):
        self.dsn = dsn
        self.client = client
        self.history = history or client  # the history host: trades of every instrument, expired ones included
        self.run_id = run_id
        self.ids = instrument_ids
        self.now = now
        self.reporter = reporter
        self.workers = workers
        self.result = EngineResult()
        self.within: tasks.Within | None = None

    async def run(
        self, datasets: list[str], keys: list[str] | None, within: tasks.Within | None = None
    ) -> EngineResult:
        """Work the backfill tasks of `datasets` and `keys` (None: any), with `within` only those inside its
        dataset's range, until none is left."""
        self.within = within
        owners = [tasks.worker_id(n) for n in range(self.workers)]
        jobs = [asyncio.create_task(self._worker(owner, datasets, keys)) for owner in owners]
        try:
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            await self._release(owners)
        return self.result

    async def _release(self, owners: list[str]) -> None:
        """Hand unfinished tasks back at once, so the next run need not wait for their leases."""
        try:
            async with await connect_async(self.dsn, application_name="deribit-ts backfill") as conn:
                await tasks.release(conn, owners)
        except Exception as exc:  # the database may be what failed; the error that stopped the run says so
            # Nothing is lost: the leases expire, and the next run on this host takes them back at once.
            log.info("could not release leases: %s", exc)

    async def _worker(self, owner: str, datasets: list[str], keys: list[str] | None) -> None:
        async with await connect_async(self.dsn, application_name="deribit-ts backfill") as conn:
            while True:
                task = await tasks.claim(conn, owner, datasets, keys, within=self.within)
                if task is None:
                    if await tasks.unfinished(conn, datasets, keys, within=self.within) == 0:
                        return
                    await asyncio.sleep(IDLE_POLL_S)  # others hold the rest; take over if they die
                    continue
                await self._process(conn, owner, task)

    async def _process(self, conn: AsyncConnection, owner: str, task: Task) -> str | None:
        """Work one task; returns why it failed (None: it did not)."""
        started = time.monotonic()
        error = None
        try:
            dataset = dataset_for(task)
            if isinstance(dataset, WholeDataset):
                await self._whole_task(conn, owner, task, dataset)
            else:
                assert isinstance(dataset, RangedDataset)
                await self._ranged_task(conn, owner, task, dataset)
        except LeaseLost:
            log.warning("task %s (%s %s) was taken over by another worker", task.task_id, task.dataset, task.key)
            return None
        except (ExchangeError, UnexpectedReplyError) as exc:
            # This task cannot succeed now (the exchange refused it, kept failing it while answering others,
            # or answered out of shape): record why and let the others go on. Only an exchange that answers
            # nobody (ExchangeUnavailableError) stops the run. The run log keeps the message (one line at the end
            # says how many failed), so stderr is not flooded when many tasks fail.
            error = str(exc)
            self.result.failed.append((task, error))
            log.info("task %s (%s %s) failed: %s", task.task_id, task.dataset, task.key, error)
        except (psycopg.errors.DataException, psycopg.errors.IntegrityError) as exc:
            # The database refused a value the reply checks let through (exchange/replies.py is the first line), or
            # a constraint of the bookkeeping caught a slip of ours: the window's transaction is rolled back and
            # only this task fails, with the database's words; the run (the collector) goes on with the others.
            error = f"{task.dataset} of {task.key}: the database refused the window ({server_reason(exc)})"
            self.result.failed.append((task, error))
            log.info("task %s (%s %s) failed: %s", task.task_id, task.dataset, task.key, error)
        await tasks.finish(conn, task, owner, self.run_id, error, timedelta(seconds=time.monotonic() - started))
        self.reporter.task_done(task.dataset, task.key)
        return error

    async def _ranged_task(self, conn: AsyncConnection, owner: str, task: Task, dataset: RangedDataset) -> None:
        key_id = self.ids[task.key] if dataset.keyed_by_instrument else None
        client = self.history if task.dataset == "trades" else self.client
        last_ms = to_ms(task.range_end)

        def fetch(start_ms: int) -> tuple[int, asyncio.Task | None, datetime]:
            """(its end, the window from start_ms in flight, the exchange's time as the request left): its size
            is decided now, from the windows seen."""
            if start_ms >= last_ms:
                return start_ms, None, self.now
            end_ms = dataset.window_end(task.key, start_ms, last_ms)
            return end_ms, asyncio.create_task(dataset.fetch_window(client, task.key, start_ms, end_ms)), self.now

        ahead_end, ahead, ahead_at = fetch(to_ms(task.resume_from))
        try:
            while ahead is not None:
                current, asked_at = ahead, ahead_at
                # Keep the next request in flight while this window is written.
                ahead_end, ahead, ahead_at = fetch(ahead_end)
                window = await current
                start_ms, end_ms = window.start_ms, window.end_ms
                async with conn.transaction():
                    loaded = await dataset.load(conn, key_id, window)
                    rows = len(window.rows) if loaded.rows is None else loaded.rows
                    if not await tasks.progress(
                        conn,
                        task,
                        owner,
                        self.run_id,
                        from_ms(start_ms),
                        from_ms(end_ms),
                        # Final is what had settled when the window was asked for, not when it commits (a
                        # window in flight during a stall, or written after the one before it, is older).
                        asked_at - dataset.settle,
                        rows,
                        loaded.inserted,
                        loaded.revised,
                        window.tally,
                        loaded.filled,
                    ):
                        raise LeaseLost
                self.reporter.rows(task.dataset, len(window.rows))
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def _whole_task(self, conn: AsyncConnection, owner: str, task: Task, dataset: WholeDataset) -> None:
        if task.resume_from >= task.range_end:
            # Its rows and cursor committed, then the process died (or the database restarted) before the task was
            # closed: nothing is left to fetch, and an empty range proves nothing. Closing it is all there is to do.
            return
        tally = Tally()
        current_tally.set(tally)
        rows = await dataset.fetch(self.client, task.key, task.resume_from, task.range_end, self.now)
        async with conn.transaction():
            loaded = await dataset.load(conn, rows)
            if not await tasks.progress(
                conn,
                task,
                owner,
                self.run_id,
                task.resume_from,
                task.range_end,
                self.now,
                len(rows),
                loaded.inserted,
                loaded.revised,
                tally,
            ):
                raise LeaseLost
        self.reporter.rows(task.dataset, len(rows))
