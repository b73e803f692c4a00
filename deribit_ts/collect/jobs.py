"""The collector's jobs: what each plans (or stores, or refreshes) when the scheduler (collect/collector.py) runs it.

    catalogue         the active instruments every run, the recently expired ones with each full check
    candles           candles of the live perpetuals and futures (plus recently retired ones on a full check)
    options           a scan of option trades, stored, every minute; every 2 minutes the candles of the options
                      that traded
    trades            a scan of future and perpetual trades, stored (collect/trades.py)
    index, funding, dvol, delivery
                      each series from its watermark (a full check: from the origin) to the exchange's now
    option_snapshots  a round of bulk option snapshots; option_greeks: one with the exchange's greeks
    rollups           a refresh of the rollups of what was written
    bookkeeping       old done tasks deleted (their run details kept as totals), coverage records merged, dead
                      process rows deleted (deribit_ts.compact_bookkeeping, sql/75_bookkeeping.sql)

The planning jobs only plan backfill tasks and tell the engine which keys it may claim; the engine
(collect/engine.py) fetches and writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from psycopg import AsyncConnection

from deribit_ts.collect import options, plan, trades
from deribit_ts.collect.budget import BACKGROUND, FRESH, OPTIONS, SNAPSHOTS, request_priority
from deribit_ts.collect.engine import CollectorEngine
from deribit_ts.collect.leader import application_name
from deribit_ts.db.connect import connect_async
from deribit_ts.db.queries import query
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.ingest import instruments, rollups
from deribit_ts.ingest.engine import DATASET_BY_NAME

if TYPE_CHECKING:
    from deribit_ts.collect.collector import CollectSettings

log = logging.getLogger(__name__)
BOOKKEEPING_KEEP = timedelta(days=1)  # done tasks and dead process rows older than this are compacted away


def snapshots_available() -> bool:
    """Whether the option snapshot library (deribit_ts.ingest.snapshots.take_snapshot) is installed."""
    import importlib.util

    return importlib.util.find_spec("deribit_ts.ingest.snapshots") is not None


@dataclass
class Job:
    """A job runs every `every` of the exchange's clock, `offset` after the period starts (e.g. a few seconds after
    a minute closes). A run is `full` (it also checks behind the watermarks) on its first run and then every
    `full_every`."""

    name: str
    every: timedelta
    run: Callable[[datetime, bool], Awaitable[None]]
    offset: timedelta = timedelta(0)
    full_every: timedelta = timedelta(hours=1)
    due: datetime | None = None  # None: at once
    full_due: datetime | None = None
    task: asyncio.Task | None = None

    def start(self, now: datetime) -> asyncio.Task:
        period = self.every.total_seconds()
        start = datetime.fromtimestamp(now.timestamp() // period * period, now.tzinfo)
        # the next period's offset, or this period's if it is still ahead (a daily job at 08:02 started at 07:40)
        self.due = start + self.offset if start + self.offset > now else start + self.every + self.offset
        full = self.full_due is None or now >= self.full_due
        if full:
            self.full_due = now + self.full_every
        self.task = asyncio.create_task(self._run(now, full))
        return self.task

    async def _run(self, now: datetime, full: bool) -> None:
        request_priority.set(BACKGROUND)
        await self.run(now, full)


class Jobs:
    """The job bodies of one leadership and the state they keep between runs: the keys each job planned (what the
    engine may claim), the live instruments, the options seen trading. The leader sets `origin`, `indexes`,
    `catalogue_conn` and `engine` each time collecting (re)starts."""

    def __init__(
        self,
        dsn: str,
        client: DeribitClient,
        settings: CollectSettings,
        control: AsyncConnection,
        run_id,
        clock_rate: Callable[[], float] = lambda: 1.0,
    ):
        self.dsn = dsn
        self.clock_rate = clock_rate  # exchange seconds per real second (1 but against a simulator's fast clock)
        self.client = client
        self.s = settings
        self.control = control
        self.run_id = run_id
        self.origin: datetime | None = None
        self.indexes: list[str] = []
        self.catalogue_conn: AsyncConnection | None = None
        self.engine: CollectorEngine | None = None
        self.live: set[str] = set()  # instruments whose candles are planned
        self.options_seen: dict[str, datetime] = {}  # option -> when a scan last found it traded
        self.option_candles_due: datetime | None = None  # when the option scan next plans candles (None: now)
        self.options_planned_until: dict[str, datetime] = {}  # per currency, where the last planning scan ended
        self.keys: dict[str, list[str]] = {}  # per job, the keys it planned: what the engine may claim

    def schedule(self, now: datetime) -> list[Job]:
        """The jobs, each with its period and offset; the catalogue, refreshed as leading started, is due next in a
        period."""
        control, catalogue = self.control, self.catalogue_conn
        s = self.s
        full = s.full_check_every
        jobs = [
            Job(
                "candles",
                s.candles_every,
                lambda now, f: self._plan_candles(control, now, f),
                timedelta(seconds=2),
                full,
            ),
            Job("index", s.index_every, lambda now, f: self._plan_index(control, now, f), timedelta(seconds=2), full),
            Job(
                "funding",
                s.funding_every,
                lambda now, f: self._plan_funding(control, now, f),
                timedelta(seconds=30),
                full,
            ),
            Job(
                "dvol",
                s.dvol_every,
                lambda now, f: self._plan_series(control, "dvol", now, f),
                timedelta(seconds=2),
                full,
            ),
            Job(
                "delivery",
                s.delivery_every,
                lambda now, f: self._plan_series(control, "delivery", now, f),
                timedelta(hours=8, minutes=2),
                full,
            ),
            Job("catalogue", s.catalogue_every, lambda now, f: self.catalogue(catalogue, now, f), full_every=full),
            Job("rollups", s.rollups_every, lambda now, f: self._rollups()),
            Job("bookkeeping", s.bookkeeping_every, lambda now, f: self._bookkeeping(), timedelta(minutes=17)),
        ]
        if "option" in s.kinds:
            jobs.insert(
                1,
                Job(
                    "options",
                    s.options_every,
                    lambda now, f: self._plan_options(control, now),
                    timedelta(seconds=5),
                    full,
                ),
            )
            if snapshots_available():  # the option snapshot library (deribit_ts.ingest.snapshots)
                jobs += [
                    Job(
                        "option_snapshots",
                        s.snapshots_every,
                        lambda now, f: self._snapshot(True),
                        timedelta(seconds=10),
                    ),
                    Job("option_greeks", s.greeks_every, lambda now, f: self._snapshot(False), timedelta(seconds=40)),
                ]
        if {"future", "perpetual"} & set(s.kinds):
            jobs.insert(
                1,
                Job("trades", s.trades_every, lambda now, f: self._store_trades(control, now), timedelta(seconds=3)),
            )
        if "perpetual" not in s.kinds:
            jobs = [j for j in jobs if j.name != "funding"]
        for job in jobs:  # the catalogue was just refreshed, with the expired instruments: next due in a period
            if job.name == "catalogue":
                job.due, job.full_due = now + s.catalogue_every, now + full
        return jobs

    # ---- the jobs --------------------------------------------------------------------------------------
    async def _plan_candles(self, control: AsyncConnection, now: datetime, full: bool) -> None:
        await plan.retry_failed(control, "candles")
        planned = await plan.plan_candles(control, now, self.origin, full, self.s.currencies, self.s.kinds)
        if full:  # a full check also plans recently retired instruments: their keys stay claimable until the next
            self._keys("candles.full", planned.keys)
            return
        keys = set(planned.keys)
        for name in sorted(keys - self.live):
            log.info("collecting %s", name)
        for name in sorted(self.live - keys):
            log.info("retired %s: collected up to its expiry", name)
        self.live = keys
        self._keys("candles", planned.keys)

    async def _plan_options(self, control: AsyncConnection, now: datetime) -> None:
        """Scan each currency's option trades from `trail` before its watermark, storing them (every run: the
        trades within 2 minutes); every `option_candles_every`, plan the candles of the options that traded (their
        last two planning periods and `trail` before at the options' priority). An option's keys stay claimable for
        two trails.

        Candles are planned every other scan: each plan costs a chart request per option that traded inside the
        trail (half an hour), which a plan every minute would double for candles due within 5 minutes anyway. A
        scan that plans nothing loses no option: a scan that plans reads back `trail` from where the previous plan's
        scan ended, not the previous scan (the first after a start: a planning period more), so it sees every trade
        the scans in between stored."""
        request_priority.set(OPTIONS)  # the scan serves fresh data: ahead of catch-up and snapshots
        every, trail = self.s.option_candles_every, options.trail()
        plans = self.option_candles_due is None or now >= self.option_candles_due
        async with await connect_async(self.dsn, application_name=application_name()) as conn:  # its own transactions
            scans = []
            for currency in self.s.currencies:
                back = trail
                if plans:
                    mark = await trades.watermark(conn, "option", currency)
                    since = self.options_planned_until.get(currency)
                    back += every if mark is None or since is None else max(mark - since, timedelta(0))
                scan = await trades.scan(conn, self.client, currency, ["option"], self.origin, now, back, trail)
                scans.append(scan)
            traded = sorted({name for scan in scans for name in scan.names}) if plans else []
            fresh_from = now.replace(second=0, microsecond=0) - trail - 2 * every
            longest = max((scan.trail for scan in scans), default=trail)
            planned = await plan.plan_options(control, now, self.origin, traded, longest, fresh_from)
            for scan in scans:  # beyond the scan's reach (an outage of a day or more): every option listed then
                for _, start, end in scan.beyond:
                    listed = await trades.listed(control, scan.currency, "option", start, end)
                    await plan.plan_option_gap(control, listed, start, end)
            for scan in scans:  # the watermark moves only once the candles of what it read are planned
                await trades.commit(conn, scan, self.run_id)
            if plans:  # half a scan period early: a scan that starts a little late still plans on time
                self.option_candles_due = now + every - self.s.options_every / 2
                self.options_planned_until.update({scan.currency: scan.until for scan in scans})
        for name in planned.keys:
            self.options_seen[name] = now
        self.options_seen = {k: t for k, t in self.options_seen.items() if t > now - 2 * trail}
        self._keys("options", sorted(self.options_seen))
        await self._trade_tasks(control)

    async def _store_trades(self, control: AsyncConnection, now: datetime) -> None:
        """Store each currency's future and/or perpetual trades since their watermarks (one scan serves both)."""
        request_priority.set(OPTIONS)  # fresh data: ahead of catch-up and snapshots
        kinds: list[str] = [k for k in ("future", "perpetual") if k in self.s.kinds]
        async with await connect_async(self.dsn, application_name=application_name()) as conn:  # its own transactions
            for currency in self.s.currencies:
                await trades.commit(
                    conn, await trades.scan(conn, self.client, currency, kinds, self.origin, now), self.run_id
                )
        await self._trade_tasks(control)

    async def _trade_tasks(self, control: AsyncConnection) -> None:
        """The trades tasks the scans left to the by-instrument route and the open option candle tasks (failed ones
        again) are claimable."""
        await plan.retry_failed(control, "trades")
        self._keys("trades", await trades.open_keys(control))

    async def _plan_series(self, control: AsyncConnection, dataset: str, now: datetime, full: bool) -> None:
        """DVOL of each currency every minute; delivery prices of each index daily."""
        await plan.retry_failed(control, dataset)
        series = DATASET_BY_NAME[dataset]
        keys = self.s.currencies if dataset == "dvol" else self.indexes
        settle, span = series.settle, series.task_span
        planned = await plan.plan_series(control, dataset, now, self.origin, full, keys, settle, span, FRESH)
        self._keys(dataset, planned.keys)

    async def _plan_index(self, control: AsyncConnection, now: datetime, full: bool) -> None:
        await plan.retry_failed(control, "index")
        self._keys("index", (await plan.plan_index(control, now, self.origin, full, self.indexes)).keys)

    async def _plan_funding(self, control: AsyncConnection, now: datetime, full: bool) -> None:
        await plan.retry_failed(control, "funding")
        self._keys("funding", (await plan.plan_funding(control, now, self.origin, full, self.s.currencies)).keys)

    def _keys(self, job: str, keys: list[str]) -> None:
        """What the engine may claim: every key some job planned; then wake it."""
        self.keys[job] = list(keys)
        self.engine.keys = sorted({k for ks in self.keys.values() for k in ks})
        self.engine.pulse()

    async def catalogue(self, conn: AsyncConnection, now: datetime, expired: bool) -> None:
        """Active instruments every run; the recently expired ones (their final state) with each full check."""
        found: dict[str, dict] = {}
        for currency in self.s.currencies:
            for exp in (True, False) if expired else (False,):
                for raw in await self.client.get_instruments(currency=currency, expired=exp):
                    found[raw["instrument_name"]] = raw
        known = await instruments.name_to_id(conn)
        await instruments.store(conn, list(found.values()))
        new = [n for n in found if n not in known]
        if new:
            log.info("%d new instrument(s) listed, e.g. %s", len(new), new[0])
        if self.engine is not None:
            self.engine.ids = await instruments.name_to_id(conn)

    async def catalogue_stale(self, now: datetime) -> bool:
        """Whether the catalogue needs a refresh now (a previous leader may just have refreshed it)."""
        cur = await self.control.execute(query("collect", "catalogue_refreshed"))
        row = await cur.fetchone()
        return row is None or row[0] is None or not now - self.s.catalogue_every < row[0] <= now

    async def _snapshot(self, bulk_only: bool) -> None:
        """One round of option snapshots (bulk: book summaries only; else a ticker per option, with the exchange's
        greeks), on a connection of its own (the round commits in one transaction), below fresh data's priority."""
        from deribit_ts.ingest.snapshots import take_snapshot

        request_priority.set(SNAPSHOTS)
        async with await connect_async(self.dsn, application_name=application_name()) as conn:
            await take_snapshot(conn, self.client, self.s.currencies, bulk_only=bulk_only, run_id=self.run_id)

    async def _rollups(self) -> None:
        """Refresh the rollups of what was written (Apache: the materialized rollups' dirty buckets; Community: the
        continuous aggregates), on a connection of its own so a long first refresh never holds up planning."""
        async with await connect_async(self.dsn, application_name=application_name()) as conn:
            await rollups.refresh_async(conn)

    async def _bookkeeping(self) -> None:
        """Keep the bookkeeping bounded, on a connection of its own (the first run after an upgrade takes longest)."""
        async with await connect_async(self.dsn, application_name=application_name()) as conn:
            # Done tasks and dead processes are kept a day of the exchange's clock: the database's clock ages them,
            # so against a simulator's fast clock the day is shorter in real time (a soak's bookkeeping stays flat).
            keep = BOOKKEEPING_KEEP / max(self.clock_rate(), 1.0)
            cur = await conn.execute(query("collect", "compact_bookkeeping"), {"keep": keep})
            tasks_deleted, merged, processes = await cur.fetchone()
        if tasks_deleted or merged or processes:
            log.info(
                "bookkeeping: %d old done task(s) deleted, %d coverage record(s) merged, %d dead process row(s)",
                tasks_deleted,
                merged,
                processes,
            )
