"""The backfill engine, run for as long as the collector leads.

The collector does not fetch anything itself: its jobs plan backfill tasks (deribit_ts.tasks) for what is
missing, and this engine works them exactly as `deribit-ts backfill` does (same windows, exact fetching,
idempotent loads, coverage, watermarks, leases), so catch-up after any outage is the backfill's proven path.
Unlike a backfill run it never finishes: idle workers wait for the planner's next pulse. It only claims the
collector's own tasks (negative priorities), lowest first; the first `fresh_workers` workers take only fresh
tasks, so a long catch-up never holds back the newest minute. Each request carries its task's priority into
the shared rate budget (collect/budget.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from psycopg import AsyncConnection

from deribit_ts.collect.budget import CATCH_UP, FUNDING, request_priority
from deribit_ts.collect.leader import application_name
from deribit_ts.db.connect import connect_async
from deribit_ts.db.queries import query
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.ingest import tasks
from deribit_ts.ingest.engine import Engine
from deribit_ts.ingest.progress import Reporter
from deribit_ts.ingest.tasks import COLLECTOR_PRIORITIES

log = logging.getLogger(__name__)

DATASETS = ["candles", "funding", "index", "dvol", "delivery", "trades"]
IDLE_S = 2.0  # an idle worker looks again this often even without a pulse (tasks whose lease expired)


class RowCounter(Reporter):
    """Counts the rows written per dataset (the collector's periodic summary line)."""

    def __init__(self) -> None:
        self.written: Counter[str] = Counter()

    def rows(self, dataset: str, rows: int) -> None:
        self.written[dataset] += rows


class CollectorEngine(Engine):
    def __init__(
        self,
        dsn: str,
        client: DeribitClient,
        run_id: int,
        instrument_ids: dict[str, int],
        now,
        workers: int,
        fresh_workers: int,
        history: DeribitClient | None = None,
    ):
        super().__init__(dsn, client, run_id, instrument_ids, now, RowCounter(), workers, history)
        self.fresh_workers = min(fresh_workers, workers - 1) if workers > 1 else 0
        self.keys: list[str] = []
        self.errors: Counter[str] = Counter()  # failed tasks per dataset
        self.last_error: str | None = None
        self.last_errors: dict[str, str] = {}  # per dataset, its newest failed task's error
        self.done: Counter[str] = Counter()  # tasks finished per dataset
        self.stopping = False
        self._pulse = asyncio.Event()

    def pulse(self) -> None:
        """New tasks were planned: wake every idle worker."""
        self._pulse.set()
        self._pulse.clear()

    def stop(self) -> None:
        """Finish the task in hand (its windows commit), then return."""
        self.stopping = True
        self.pulse()

    async def run_forever(self) -> None:
        await self.run(DATASETS, None)

    async def _worker(self, owner: str, datasets: list[str], keys: list[str] | None) -> None:
        number = int(owner.rsplit("w", 1)[1])
        max_priority = FUNDING if number < self.fresh_workers else COLLECTOR_PRIORITIES[1]
        async with await connect_async(self.dsn, application_name=application_name()) as conn:
            while not self.stopping:
                task = await tasks.claim(conn, owner, datasets, self.keys, (COLLECTOR_PRIORITIES[0], max_priority))
                if task is None:
                    try:
                        await asyncio.wait_for(self._pulse.wait(), IDLE_S)
                    except TimeoutError:
                        pass
                    continue
                request_priority.set(task.priority)
                error = await self._process(conn, owner, task)
                self.done[task.dataset] += 1
                if error is not None:
                    self.errors[task.dataset] += 1
                    self.last_error = f"{task.dataset} {task.key}: {error}"
                    self.last_errors[task.dataset] = self.last_error
                    self.result.failed.clear()  # counted; the next plan retries the range

    async def open_tasks(self, conn: AsyncConnection) -> dict[str, int]:
        """Unfinished collector tasks: fresh ones and catch-up ones."""
        cur = await conn.execute(query("collect", "open_tasks"), {"catch_up": CATCH_UP})
        fresh, catch_up = await cur.fetchone()
        return {"fresh": fresh, "catch_up": catch_up}
