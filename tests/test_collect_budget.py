"""The collector's prioritised rate budget: waiters are served by priority, FIFO within one, on a virtual clock."""

from __future__ import annotations

import asyncio
import os

import psycopg
from test_limiter import run_virtual

from deribit_ts.collect.budget import CATCH_UP, FRESH, SNAPSHOTS, PriorityLimiter, request_priority
from deribit_ts.ingest import tasks


def test_fresh_requests_overtake_queued_catch_up_and_snapshots():
    async def main() -> list[str]:
        limiter = PriorityLimiter(initial_fill=0.0)
        order: list[str] = []

        async def request(label: str, priority: int) -> None:
            request_priority.set(priority)
            await limiter.acquire("get_tradingview_chart_data")
            order.append(label)

        # A queue of catch-up and snapshot requests forms first; fresh ones arrive later and go first.
        queued = [asyncio.create_task(request(f"catch-up {i}", CATCH_UP)) for i in range(5)]
        queued += [asyncio.create_task(request(f"snapshot {i}", SNAPSHOTS)) for i in range(3)]
        await asyncio.sleep(0)
        queued += [asyncio.create_task(request(f"fresh {i}", FRESH)) for i in range(3)]
        await asyncio.gather(*queued)
        return order

    order = run_virtual(main)
    assert order[:3] == ["fresh 0", "fresh 1", "fresh 2"]
    assert order[3:8] == [f"catch-up {i}" for i in range(5)]
    assert order[8:] == [f"snapshot {i}" for i in range(3)]


def test_the_allowance_is_the_credit_limiters():
    """Priorities reorder, they never add credits: 200 requests take as long as the plain limiter allows."""

    async def main() -> float:
        limiter = PriorityLimiter(initial_fill=0.0)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def request(priority: int) -> None:
            request_priority.set(priority)
            await limiter.acquire("get_tradingview_chart_data")
            limiter.request_done("get_tradingview_chart_data")

        await asyncio.gather(*(request(FRESH if i % 3 else CATCH_UP) for i in range(200)))
        return loop.time() - started

    elapsed = run_virtual(main)
    assert 200 / 20 - 0.5 <= elapsed <= 200 / 20 + 0.5  # 20 requests a second, the pool starting empty


def test_a_process_with_two_runs_in_progress_shares_the_allowance_once(new_db):
    """A collector whose database went away while it led could not close that leadership's run, and leads again in
    a new one: one process on the host, so its share of the allowance stays whole."""
    with psycopg.connect(new_db, autocommit=True) as conn:
        for _ in range(2):
            conn.execute(
                "INSERT INTO deribit_ts.runs (command, host, pid) VALUES ('collect', %s, %s)", (tasks.HOST, os.getpid())
            )

    async def processes() -> int:
        async with await psycopg.AsyncConnection.connect(new_db) as conn:
            return await tasks.live_local_runs(conn)

    assert asyncio.run(processes()) == 1
