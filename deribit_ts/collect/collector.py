"""`deribit-ts collect`: stand by or lead; while leading, schedule the jobs on the exchange's clock.

    run_collector            until stopped: connect, stand by until the leader lock is ours, lead; on a lost
                             database connection start over (after a backoff), standing by again
    Leader.run               one leadership: the run row, the engine, the scheduler and the heartbeat; an
                             exchange outage pauses it (still leading) until the exchange answers again
    jobs                     catalogue, candles, index, funding, DVOL, delivery prices, traded options, option
                             snapshots, rollups: each plans backfill tasks (or stores the catalogue, takes a
                             snapshot round, refreshes the rollups) on its own schedule; the engine works the tasks

Stopping (SIGTERM/SIGINT): the scheduler stops planning, each worker finishes the task in hand (every window
commits atomically with its coverage), the run is closed, the heartbeat says 'stopped', the lock is released.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from deribit_ts.collect import options, plan
from deribit_ts.collect.budget import BACKGROUND, FRESH, SNAPSHOTS, PriorityLimiter, request_priority
from deribit_ts.collect.clock import ExchangeClock
from deribit_ts.collect.engine import CollectorEngine
from deribit_ts.collect.health import Healthcheck
from deribit_ts.collect.leader import APPLICATION, Leadership, new_process_id
from deribit_ts.collect.systemd import notify
from deribit_ts.config import DEFAULT_MAX_RETRIES, env_int
from deribit_ts.db.connect import connect_async
from deribit_ts.errors import DatabaseUnavailable
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import ExchangeUnavailableError
from deribit_ts.ingest import candles, dvol, instruments, rollups, tasks
from deribit_ts.ingest.backfill import INDEX_TASK_SPAN, _finish_run, _start_run, share_allowance
from deribit_ts.timeutil import to_ms

log = logging.getLogger(__name__)

STANDBY_POLL_S = 2.0  # a standby tries the lock this often: takeover well within 30 s
HEARTBEAT_S = 5.0  # real seconds between heartbeats (the issue asks for at least one every 30 s)
STOP_GRACE_S = 8.0  # in-flight tasks get this long to commit on SIGTERM, then they are cancelled
EXCHANGE_PROBE_S = 5.0  # while the exchange is unavailable, ask it the time this often
MAX_BACKOFF_S = 15.0


@dataclass
class CollectSettings:
    currencies: list[str] = field(default_factory=lambda: ["BTC", "ETH"])
    kinds: list[str] = field(default_factory=lambda: ["perpetual", "future"])
    since: datetime | None = None
    healthcheck_url: str | None = None
    candles_every: timedelta = timedelta(minutes=1)
    index_every: timedelta = timedelta(minutes=1)
    funding_every: timedelta = timedelta(hours=1)
    catalogue_every: timedelta = timedelta(minutes=5)
    full_check_every: timedelta = timedelta(hours=1)
    rollups_every: timedelta = timedelta(minutes=5)
    options_every: timedelta = timedelta(minutes=2)  # option candles within 5 minutes: a scan every 2
    snapshots_every: timedelta = timedelta(minutes=5)  # bulk option snapshots (book summaries)
    greeks_every: timedelta = timedelta(hours=1)  # option snapshots with the exchange's greeks (a ticker each)
    dvol_every: timedelta = timedelta(minutes=1)
    delivery_every: timedelta = timedelta(days=1)  # at 08:02 UTC: deliveries are at 08:00
    workers: int = 4
    fresh_workers: int = 2

    def public(self) -> dict:
        """What the heartbeat row records (status reads currencies and kinds from it)."""
        return {
            "currencies": self.currencies,
            "kinds": self.kinds,
            "datasets": self.datasets(),
            "since": self.since,
            "every": {
                "candles": self.candles_every.total_seconds(),
                "index": self.index_every.total_seconds(),
                "funding": self.funding_every.total_seconds(),
                "catalogue": self.catalogue_every.total_seconds(),
            },
        }

    def datasets(self) -> list[str]:
        out = ["instruments"]
        if "perpetual" in self.kinds:
            out += ["candles.perpetual", "funding"]
        if "future" in self.kinds:
            out.append("candles.future")
        if "option" in self.kinds:
            out.append("candles.option")
            if snapshots_available():
                out += ["option_snapshots", "option_greeks"]
        return [*out, "index", "dvol", "delivery"]


def snapshots_available() -> bool:
    """Whether the option snapshot library (deribit_ts.ingest.snapshots.take_snapshot) is installed."""
    import importlib.util

    return importlib.util.find_spec("deribit_ts.ingest.snapshots") is not None


class Stop:
    """Set by SIGTERM/SIGINT; waits end early when it is."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.event.wait(), max(0.0, seconds))
        except TimeoutError:
            pass


async def run_collector(dsn: str, api_url: str, settings: CollectSettings, stop: Stop | None = None) -> None:
    stop = stop or Stop()
    if os.name == "posix":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.event.set)
    health = Healthcheck(settings.healthcheck_url)
    health.start()
    process_id = new_process_id()
    retries = env_int("DERIBIT_TS_MAX_RETRIES", DEFAULT_MAX_RETRIES)
    async with DeribitClient(api_url, limiter=PriorityLimiter.from_env(), max_retries=retries) as client:
        await _check_names(client, settings, stop, health)
        notify("READY=1\nSTATUS=connecting to the database")
        clock = ExchangeClock(client)  # kept across leaderships: a takeover needs one sample, not a new rate
        backoff = 1.0
        while not stop.is_set():
            try:
                async with Leadership(dsn, process_id, settings.public()) as lead:
                    await _stand_by(lead, stop, health)
                    if stop.is_set():
                        await lead.beat("stopped", role="stopped")
                        break
                    await Leader(dsn, client, settings, lead, stop, health, clock).run()
                    backoff = 1.0
            except (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable, TimeoutError) as exc:
                reason = "database unavailable: " + " ".join(str(exc).split())[:300]
                log.warning("%s; retrying in %.0f s", reason, backoff)
                health.fail(reason)
                health.watchdog.progress(reason)  # retrying is working as designed
                await stop.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
    notify("STOPPING=1")
    await health.drain()


async def _check_names(client: DeribitClient, settings: CollectSettings, stop: Stop, health: Healthcheck) -> None:
    """Refuse unknown currencies in one line (a UserError); an exchange that does not answer yet is waited for."""
    while True:
        try:
            settings.currencies = await instruments.resolve_currencies(client, settings.currencies)
            return
        except ExchangeUnavailableError as exc:
            health.fail(str(exc))
            log.warning("%s; retrying", exc)
            await stop.sleep(EXCHANGE_PROBE_S)
            if stop.is_set():
                return


async def _stand_by(lead: Leadership, stop: Stop, health: Healthcheck) -> None:
    next_beat = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        if await lead.try_lead():
            log.info("leading (process %s)", lead.process_id)
            return
        if loop.time() >= next_beat:
            leader = await lead.leader_name()
            await lead.beat(f"standing by; {leader or 'another process'} leads")
            health.success()
            health.watchdog.progress("standing by")
            next_beat = loop.time() + HEARTBEAT_S
        await stop.sleep(STANDBY_POLL_S)


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


class Leader:
    def __init__(
        self,
        dsn: str,
        client: DeribitClient,
        settings: CollectSettings,
        lead: Leadership,
        stop: Stop,
        health: Healthcheck,
        clock: ExchangeClock,
    ):
        self.dsn = dsn
        self.client = client
        self.s = settings
        self.lead = lead
        self.stop = stop
        self.health = health
        self.clock = clock
        self.state = "starting"
        self.error: str | None = None  # the newest error, for the next heartbeat
        self.run_id: int | None = None
        self.origin: datetime | None = None
        self.indexes: list[str] = []
        self.engine: CollectorEngine | None = None
        self.live: set[str] = set()  # instruments whose candles are planned
        self.options_seen: dict[str, datetime] = {}  # option -> when a scan last found it traded
        self.keys: dict[str, list[str]] = {}  # per job, the keys it planned: what the engine may claim
        self.reported_errors: dict[str, int] = {}
        self.ending = asyncio.Event()  # this leadership ends (stop, or the lock connection is gone)

    # ---- one leadership --------------------------------------------------------------------------------
    async def run(self) -> None:
        control = await connect_async(self.dsn, application_name=APPLICATION)
        stop_sharing = asyncio.Event()
        sharing = None
        status = "interrupted"
        try:
            await tasks.recover_dead_local_workers(control)
            self.run_id = await _start_run(control, "collect", self.s.public())
            if self.client.limiter.enabled:
                sharing = await share_allowance(control, self.client.limiter, stop_sharing)
            heart = asyncio.create_task(self._heartbeat())
            work = asyncio.create_task(self._lead(control))
            done, _ = await asyncio.wait({heart, work}, return_when=asyncio.FIRST_COMPLETED)
            for task in (heart, work):
                if task not in done:
                    if task is work:
                        await self._wind_down(work)
                    else:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
            for task in done:
                task.result()  # raises what ended it (a lost database connection)
            status = "ok"
        finally:
            stop_sharing.set()
            if sharing is not None:
                await asyncio.gather(sharing, return_exceptions=True)
            if self.run_id is not None:
                try:
                    await _finish_run(
                        control, self.run_id, status, self.error if status != "ok" else None, self.client.stats
                    )
                    await self.lead.beat("stopped", role="stopped", run_id=self.run_id)
                except (psycopg.Error, TimeoutError):
                    pass  # the database is what failed; the next start on this host marks the run interrupted
            await control.close()

    async def _wind_down(self, work: asyncio.Task) -> None:
        """The heartbeat ended (stop, or the lock connection died): let the work finish what it holds."""
        self.ending.set()
        if self.engine is not None:
            self.engine.stop()
        try:
            await asyncio.wait_for(asyncio.shield(work), STOP_GRACE_S)
        except (TimeoutError, Exception):
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)

    async def _heartbeat(self) -> None:
        """Beat every HEARTBEAT_S until stopped; raises when the lock connection is gone (leadership lost)."""
        while not self.stop.is_set():
            exchange_now = self.clock.now() if self.clock.samples else None
            error, self.error = self.error, None
            try:
                await self.lead.beat(self.state, exchange_now=exchange_now, run_id=self.run_id, error=error)
            except (psycopg.Error, TimeoutError):
                self.ending.set()  # the lock connection is gone, so is the lock: stop leading at once
                raise
            self.health.watchdog.progress(self.state)
            if error:
                self.health.fail(error)
            elif self.state == "collecting":
                self.health.success()
            await self.stop.sleep(HEARTBEAT_S)

    async def _lead(self, control: AsyncConnection) -> None:
        """Collect; an exchange outage pauses collecting (still leading) until the exchange answers."""
        while not self._ended():
            try:
                await self._collect(control)
                return
            except ExchangeUnavailableError as exc:
                self._fail(f"exchange unavailable: {exc.detail}", state="exchange unavailable")
                await self._wait_for_exchange()  # then collect again: new jobs, whose first runs are full checks

    def _ended(self) -> bool:
        return self.stop.is_set() or self.ending.is_set()

    async def _wait_for_exchange(self) -> None:
        while not self._ended():
            await self.stop.sleep(EXCHANGE_PROBE_S)
            try:
                await self.clock.start()
                log.warning("the exchange answers again: catching up")
                return
            except ExchangeUnavailableError as exc:
                self._fail(f"exchange unavailable: {exc.detail}", state="exchange unavailable")

    def _fail(self, reason: str, state: str | None = None) -> None:
        log.warning("%s", reason)
        self.error = reason
        if state:
            self.state = state

    # ---- collecting ------------------------------------------------------------------------------------
    async def _collect(self, control: AsyncConnection) -> None:
        request_priority.set(BACKGROUND)
        if len(self.clock.samples) < 2:
            await self.clock.start()
        else:
            await self.clock.sync()
        now = self.clock.now()
        self.origin = await plan.ensure_origin(control, self.s.since, now)
        self.indexes = await instruments.check_indexes(
            self.client, [f"{c.lower()}_usd" for c in self.s.currencies], keep_unlisted=False
        )
        await _release_previous_leaders_tasks(control)
        catalogue = await connect_async(self.dsn, application_name=APPLICATION)
        try:
            if await self._catalogue_stale(control, now):  # else a previous leader just refreshed it
                await self._catalogue(catalogue, now, True)
                await plan.record_job(control, "catalogue", now)
            self.engine = CollectorEngine(
                self.dsn,
                self.client,
                self.run_id,
                await instruments.name_to_id(control),
                now,
                self.s.workers,
                self.s.fresh_workers,
            )
            jobs = self._jobs(control, catalogue)
            engine_task = asyncio.create_task(self.engine.run_forever())
            self.state = "collecting"
            try:
                await self._schedule(jobs, engine_task, control)
            finally:
                self.engine.stop()
                for job in jobs:
                    if job.task is not None:
                        job.task.cancel()
                await asyncio.gather(*(j.task for j in jobs if j.task), return_exceptions=True)
                try:
                    await asyncio.wait_for(asyncio.shield(engine_task), STOP_GRACE_S)
                except TimeoutError:
                    engine_task.cancel()
                    await asyncio.gather(engine_task, return_exceptions=True)
            if engine_task.done() and not engine_task.cancelled() and engine_task.exception() is not None:
                raise engine_task.exception()
        finally:
            await catalogue.close()

    def _jobs(self, control: AsyncConnection, catalogue: AsyncConnection) -> list[Job]:
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
            Job("catalogue", s.catalogue_every, lambda now, f: self._catalogue(catalogue, now, f), full_every=full),
            Job("rollups", s.rollups_every, lambda now, f: self._rollups()),
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
            if snapshots_available():  # options-chain's library (deribit_ts.ingest.snapshots), once installed
                jobs += [
                    Job(
                        "option_snapshots",
                        s.snapshots_every,
                        lambda now, f: self._snapshot(True),
                        timedelta(seconds=10),
                    ),
                    Job("option_greeks", s.greeks_every, lambda now, f: self._snapshot(False), timedelta(seconds=40)),
                ]
        if "perpetual" not in s.kinds:
            jobs = [j for j in jobs if j.name != "funding"]
        for job in jobs:  # the catalogue was just refreshed, with the expired instruments: next due in a period
            if job.name == "catalogue":
                job.due, job.full_due = self.clock.now() + s.catalogue_every, self.clock.now() + full
        return jobs

    async def _schedule(self, jobs: list[Job], engine_task: asyncio.Task, control: AsyncConnection) -> None:
        while not self._ended() and not engine_task.done():
            if self.clock.stale():
                await self.clock.sync()
            now = self.clock.now()
            self.engine.now = now
            for job in jobs:
                if job.task is not None and job.task.done():
                    await self._job_done(job, control)
                if job.task is None and (job.due is None or job.due <= now):
                    job.start(now)
            await self._report_task_errors(control)
            nearest = min((j.due for j in jobs if j.due is not None and j.task is None), default=now)
            wait = min(0.5, self.clock.due_in(nearest)) if nearest > now else 0.05
            pause = asyncio.ensure_future(self.stop.sleep(wait))
            await asyncio.wait({engine_task, pause}, return_when=asyncio.FIRST_COMPLETED)
            pause.cancel()

    async def _job_done(self, job: Job, control: AsyncConnection) -> None:
        task, job.task = job.task, None
        exc = task.exception() if not task.cancelled() else None
        if isinstance(exc, ExchangeUnavailableError | psycopg.OperationalError | psycopg.InterfaceError):
            raise exc  # an outage: handled around the whole leadership
        if exc is not None:
            self._fail(f"{job.name}: {' '.join(str(exc).split())[:300] or exc.__class__.__name__}")
            await plan.record_job(control, job.name, self.clock.now(), error=self.error)
        else:
            await plan.record_job(control, job.name, self.clock.now())

    async def _report_task_errors(self, control: AsyncConnection) -> None:
        """Failed tasks (the next plan retries their range) are counted per dataset and reported once."""
        for dataset, count in self.engine.errors.items():
            new = count - self.reported_errors.get(dataset, 0)
            if new > 0:
                self.reported_errors[dataset] = count
                self._fail(self.engine.last_error or f"{dataset}: a task failed")
                await plan.record_job(control, dataset, None, error=self.engine.last_error, errors=new)

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
        """Scan each currency's option trades since its scan watermark (trailing by the settling time), plan the
        candles of the options that traded. An option's keys stay claimable for two settling times."""
        settle = candles.DATASET.settle
        traded: set[str] = set()
        for currency in self.s.currencies:
            since = min(await options.scan_watermark(control, currency) or self.origin, now - settle)
            traded |= await options.traded_options(self.client, currency, to_ms(since), to_ms(now))
        planned = await plan.plan_options(control, now, self.origin, sorted(traded))
        for currency in self.s.currencies:
            await options.set_scan_watermark(control, currency, now)
        for name in planned.keys:
            self.options_seen[name] = now
        self.options_seen = {k: t for k, t in self.options_seen.items() if t > now - 2 * settle}
        self._keys("options", sorted(self.options_seen))

    async def _plan_series(self, control: AsyncConnection, dataset: str, now: datetime, full: bool) -> None:
        """DVOL of each currency every minute; delivery prices of each index daily."""
        await plan.retry_failed(control, dataset)
        if dataset == "dvol":
            keys, settle, span = self.s.currencies, dvol.DATASET.settle, dvol.DATASET.task_span
        else:
            keys, settle, span = self.indexes, timedelta(0), INDEX_TASK_SPAN
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

    async def _catalogue(self, conn: AsyncConnection, now: datetime, expired: bool) -> None:
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

    async def _catalogue_stale(self, control: AsyncConnection, now: datetime) -> bool:
        cur = await control.execute("SELECT last_ok_exchange FROM deribit_ts.collector_jobs WHERE job = 'catalogue'")
        row = await cur.fetchone()
        return row is None or row[0] is None or not now - self.s.catalogue_every < row[0] <= now

    async def _snapshot(self, bulk_only: bool) -> None:
        """One round of option snapshots (bulk: book summaries only; else a ticker per option, with the exchange's
        greeks), on a connection of its own (the round commits in one transaction), below fresh data's priority."""
        from deribit_ts.ingest.snapshots import take_snapshot

        request_priority.set(SNAPSHOTS)
        async with await connect_async(self.dsn, application_name=APPLICATION) as conn:
            await take_snapshot(conn, self.client, self.s.currencies, bulk_only=bulk_only, run_id=self.run_id)

    async def _rollups(self) -> None:
        """Refresh the rollups of what was written (Apache: the materialized rollups' dirty buckets; Community: the
        continuous aggregates), on a connection of its own so a long first refresh never holds up planning."""
        async with await connect_async(self.dsn, application_name=APPLICATION) as conn:
            await rollups.refresh_async(conn)


async def _release_previous_leaders_tasks(conn: AsyncConnection) -> None:
    """Only the leader works collector tasks (negative priorities), so any still marked running belong to a leader
    that died or lost its lock: take them back at once instead of waiting for their leases to expire."""
    await conn.execute(
        """UPDATE deribit_ts.tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL, updated_at = now()
            WHERE state = 'running' AND priority < 0"""
    )
