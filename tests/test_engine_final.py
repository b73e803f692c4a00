"""A window is final up to what had settled when it was asked for, not when it commits.

A window's answer is the exchange's state when the request was served; its commit can come much later (the next
window is asked for while one is written, a process stalls, a busy database). Judging it final by the clock at
commit made an hour (or minute) the exchange had not closed when asked count as fetched for good: a gap below
the watermark that no plan fetches again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

from hostile import hostile_exchange
from sim_fixtures import sim_config

from deribit_ts.db.connect import connect_async
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.limiter import CreditLimiter
from deribit_ts.ingest import funding, instruments, tasks
from deribit_ts.ingest.engine import Engine
from deribit_ts.ingest.progress import Reporter
from deribit_ts.ingest.runlog import RunLog
from deribit_ts.sim import run_in_thread

HOUR = datetime(2024, 3, 1, 12, tzinfo=UTC)
ASKED = HOUR - timedelta(seconds=30)  # the exchange's time when the window is asked for: 12:00 not closed yet


def test_an_hour_not_closed_when_asked_for_is_planned_again_though_the_clock_moved_on_meanwhile(new_db):
    arrived = threading.Event()

    def answer(method: str, params: dict, reply):
        if "funding_rate_history" in method:
            arrived.set()
            time.sleep(1.0)  # the answer is on its way while the collector's clock moves on
        return None

    async def main(url: str) -> list[datetime]:
        async with (
            await connect_async(new_db, autocommit=True) as control,
            DeribitClient(url, limiter=CreditLimiter(enabled=False), max_retries=0) as client,
        ):
            await instruments.store(control, await instruments.fetch_catalogue(client, ["BTC"]))
            async with RunLog(control, "test", {}, client) as run:
                want = (HOUR - timedelta(hours=1), HOUR + timedelta(hours=1))
                await tasks.plan(control, "funding", "BTC-PERPETUAL", *want, funding.DATASET.task_span, 1)
                ids = await instruments.name_to_id(control)
                engine = Engine(new_db, client, run.run_id, ids, ASKED, Reporter(), 1)
                working = asyncio.create_task(engine.run(["funding"], ["BTC-PERPETUAL"]))
                assert await asyncio.to_thread(arrived.wait, 30)
                engine.now = HOUR + timedelta(hours=1)  # the clock moved on before the window committed
                await working
                # 12:00 was not in the answer: the next plan of the same want fetches it again
                await tasks.plan(control, "funding", "BTC-PERPETUAL", *want, funding.DATASET.task_span, 1)
                cur = await control.execute(
                    "SELECT range_start FROM deribit_ts.tasks WHERE dataset = 'funding' AND state = 'pending'"
                )
                return [row[0] for row in await cur.fetchall()]

    with run_in_thread(sim_config(now=ASKED)) as sim, hostile_exchange(answer, upstream=sim.url) as (url, _):
        replanned = asyncio.run(main(url))
    assert len(replanned) == 1 and replanned[0] <= HOUR, replanned
