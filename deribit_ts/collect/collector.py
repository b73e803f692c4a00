"""`deribit-ts collect`: stand by or lead; while leading, schedule the jobs on the exchange's clock.

    run_collector            until stopped: connect, stand by until the leader lock is ours, lead; on a lost
                             database connection start over (after a backoff), standing by again
    Leader.run               one leadership: the run row, the engine, the scheduler and the heartbeat; an
                             exchange outage pauses it (still leading) until the exchange answers again
    Leader._schedule         runs each job (collect/jobs.py: catalogue, candles, index, funding, DVOL, delivery
                             prices, traded options, option snapshots, rollups) on its own schedule; the jobs plan
                             backfill tasks, the engine (collect/engine.py) works them

Stopping (SIGTERM/SIGINT): the scheduler stops planning, each worker finishes the task in hand (every window
commits atomically with its coverage), the run is closed, the heartbeat says 'stopped', the lock is released.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from deribit_ts.collect import plan
from deribit_ts.collect.budget import BACKGROUND, PriorityLimiter, request_priority
from deribit_ts.collect.clock import ExchangeClock
from deribit_ts.collect.engine import CollectorEngine
from deribit_ts.collect.health import Healthcheck
from deribit_ts.collect.jobs import Job, Jobs, snapshots_available
from deribit_ts.collect.leader import (
    BEAT_TIMEOUT_S,
    Leadership,
    LeadershipLost,
    application_name,
    fenced,
    lease_s,
    this_process_id,
)
from deribit_ts.collect.status import age
from deribit_ts.collect.systemd import notify
from deribit_ts.config import DEFAULT_MAX_RETRIES, env_int
from deribit_ts.db.connect import connect_async, server_reason
from deribit_ts.db.queries import query
from deribit_ts.errors import DatabaseUnavailable
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import ExchangeError, ExchangeUnavailableError, UnexpectedReplyError
from deribit_ts.ingest import instruments, tasks
from deribit_ts.ingest.backfill import allowance_shared, history_client
from deribit_ts.ingest.runlog import RunLog

log = logging.getLogger(__name__)

STANDBY_POLL_S = 2.0  # a standby tries the lock this often: takeover well within 30 s
HEARTBEAT_S = 5.0  # real seconds between heartbeats (the issue asks for at least one every 30 s)
STOP_GRACE_S = 8.0  # in-flight tasks get this long to commit on SIGTERM, then they are cancelled
TAKEN_OVER = "another took over while it could not beat (frozen longer than the lease)"
EXCHANGE_PROBE_S = 5.0  # while the exchange is unavailable, ask it the time this often
MAX_BACKOFF_S = 15.0
SUMMARY_ENV = "DERIBIT_TS_COLLECT_SUMMARY_S"
DEFAULT_SUMMARY_S = 300  # real seconds between the leader's one-line summaries


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
    bookkeeping_every: timedelta = timedelta(hours=1)  # deribit_ts.compact_bookkeeping
    options_every: timedelta = timedelta(minutes=1)  # option trades within 2 minutes: a scan every minute
    option_candles_every: timedelta = timedelta(minutes=2)  # option candles within 5 minutes: planned every 2
    trades_every: timedelta = timedelta(minutes=1)  # future and perpetual trades within 2 minutes
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
            out += ["candles.perpetual", "funding", "trades.perpetual"]
        if "future" in self.kinds:
            out += ["candles.future", "trades.future"]
        if "option" in self.kinds:
            out += ["candles.option", "trades.option"]
            if snapshots_available():
                out += ["option_snapshots", "option_greeks"]
        return [*out, "index", "dvol", "delivery"]


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


def summary_s() -> int:
    """Real seconds between the leader's summary lines, DERIBIT_TS_COLLECT_SUMMARY_S."""
    return env_int(SUMMARY_ENV, DEFAULT_SUMMARY_S, minimum=1)


def check_environment() -> None:
    """Refuse a bad DERIBIT_TS_LEADER_LEASE_S or DERIBIT_TS_COLLECT_SUMMARY_S in one line at start: they are read
    while collecting (a standby's check of the leader, the summary task), where a bad value would stop a standby
    or silence the summary hours later."""
    lease_s()
    summary_s()


async def run_collector(
    dsn: str, api_url: str, settings: CollectSettings, stop: Stop | None = None, history_url: str | None = None
) -> None:
    """Collect until stopped; trades beyond the by-currency route's reach come from `history_url` (default: the
    API)."""
    stop = stop or Stop()
    if os.name == "posix":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.event.set)
    health = Healthcheck(settings.healthcheck_url)
    health.start()
    process_id = this_process_id()
    retries = env_int("DERIBIT_TS_MAX_RETRIES", DEFAULT_MAX_RETRIES)
    async with (
        DeribitClient(api_url, limiter=PriorityLimiter.from_env(), max_retries=retries) as client,
        history_client(api_url, history_url, retries, client) as history,
    ):
        await _check_names(client, settings, stop, health)
        notify("READY=1\nSTATUS=connecting to the database")
        clock = ExchangeClock(client)  # kept across leaderships: a takeover needs one sample, not a new rate
        backoff = 1.0
        while not stop.is_set():
            lead = Leadership(dsn, process_id, settings.public())
            try:
                async with lead:
                    await _stand_by(lead, stop, health)
                    if stop.is_set():
                        await lead.beat("stopped", role="stopped")
                        break
                    await Leader(lead.fenced_dsn(), client, settings, lead, stop, health, clock, history).run()
                    backoff = 1.0
            except LeadershipLost as exc:
                _lost_leadership(exc, health)
            except (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable, TimeoutError) as exc:
                if await lead.taken_over():  # frozen past its lease: the standby ended its session and leads
                    _lost_leadership(LeadershipLost(f"this collector no longer leads: {TAKEN_OVER}"), health)
                    continue
                backoff = await _retry_after(f"database unavailable: {server_reason(exc)[:300]}", backoff, stop, health)
            except psycopg.Error as exc:
                if fenced(exc):
                    _lost_leadership(exc, health)
                    continue
                # A statement the database refused, not a lost connection: a slip of ours, a privilege revoked, a
                # server fault. A restart would meet it again, so exiting would be a crash loop that reports
                # nothing; staying up says it where it is watched (status, the /fail ping) and resumes once it
                # clears, the other datasets' catch-up included.
                backoff = await _retry_after(_database_error(exc), backoff, stop, health)
    notify("STOPPING=1")
    log.info("stopped (process %s)", process_id)
    await health.drain()


@dataclass(frozen=True)
class Totals:
    """What a leader has done so far: rows written (this leadership's engines), requests sent (this process)."""

    at: float
    rows: int
    requests: int

    @classmethod
    def of(cls, leader: Leader) -> Totals:
        return cls(time.monotonic(), leader.rows_written(), leader.client.stats.requests)


def _refused(exc: BaseException) -> bool:
    """Whether `exc` is a statement the database refused: not a lost connection, not a fenced write."""
    lost = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return isinstance(exc, psycopg.Error) and not lost and not fenced(exc)


def _database_error(exc: BaseException) -> str:
    """How a refused statement is told: in the log, the /fail ping and the run log alike."""
    return f"database error: {server_reason(exc)[:300]}"


async def _retry_after(reason: str, backoff: float, stop: Stop, health: Healthcheck) -> float:
    """Say why leading stopped, wait `backoff` seconds (or until stopped); the next wait."""
    log.warning("%s; retrying in %.0f s", reason, backoff)
    health.fail(reason)
    health.watchdog.progress(reason)  # retrying is working as designed
    await stop.sleep(backoff)
    return min(backoff * 2, MAX_BACKOFF_S)


def _lost_leadership(exc: Exception, health: Healthcheck) -> None:
    """Another process took over while this one could not beat (it was frozen): nothing it wrote since then was
    kept (fencing); stand by again."""
    reason = server_reason(exc)[:300]
    log.warning("%s; standing by", reason)
    health.fail(reason)


async def _check_names(client: DeribitClient, settings: CollectSettings, stop: Stop, health: Healthcheck) -> None:
    """Refuse unknown currencies in one line (a UserError); an exchange that does not answer yet is waited for."""
    while True:
        try:
            settings.currencies = await instruments.resolve_currencies(client, settings.currencies)
            return
        except (ExchangeUnavailableError, UnexpectedReplyError) as exc:  # down, or answering out of shape
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
            log.info("leading (process %s, epoch %s)", lead.process_id, lead.epoch)
            return
        if loop.time() >= next_beat:
            leader = await lead.leader_name()
            await lead.beat(f"standing by; {leader or 'another process'} leads")
            health.success()
            health.watchdog.progress("standing by")
            next_beat = loop.time() + HEARTBEAT_S
        await stop.sleep(STANDBY_POLL_S)


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
        history: DeribitClient | None = None,
    ):
        self.dsn = dsn
        self.client = client
        self.history = history or client  # the history host: trades beyond the by-currency route's reach
        self.s = settings
        self.lead = lead
        self.stop = stop
        self.health = health
        self.clock = clock
        self.state = "starting"
        self.error: str | None = None  # the newest error, for the next heartbeat
        self.run_id: int | None = None
        self.jobs: Jobs | None = None  # the job bodies and what they keep between runs
        self.engine: CollectorEngine | None = None
        self.rows_before = 0  # rows written by the engines of this leadership before the current one
        self.reported_errors: dict[str, int] = {}
        self.ending = asyncio.Event()  # this leadership ends (stop, or the lock connection is gone)

    # ---- one leadership --------------------------------------------------------------------------------
    async def run(self) -> None:
        control = await connect_async(self.dsn, application_name=application_name())
        run = None
        try:
            await tasks.recover_dead_local_workers(control)
            # A leadership that ends with an error (a lost database) is logged interrupted, with the last error seen.
            async with (
                RunLog(control, "collect", self.s.public(), self.client, error_status="interrupted") as run,
                allowance_shared(control, self.client.limiter),
            ):
                self.run_id = run.run_id
                self.jobs = Jobs(self.dsn, self.client, self.s, control, self.run_id, lambda: self.clock.rate)
                try:
                    await self._lead_until_ended(control)
                except BaseException as exc:
                    if _refused(exc):  # (the connection still works: the run log can say it)
                        self.error = _database_error(exc)
                    run.error = self.error
                    raise
                run.error = None
            try:
                await self.lead.beat("stopped", role="stopped", run_id=self.run_id)
            except (psycopg.Error, TimeoutError):
                pass  # the database is what failed
        finally:
            await control.close()
            done = Totals.of(self)
            log.info(
                "stopped leading (run %s, %s): %s rows written, %s requests",
                self.run_id,
                run.status if run is not None else "not started",
                f"{done.rows:,}",
                f"{done.requests:,}",
            )

    async def _lead_until_ended(self, control: AsyncConnection) -> None:
        """Beat and collect until stopped; raises what ended the leadership otherwise (a lost connection)."""
        heart = asyncio.create_task(self._heartbeat())
        work = asyncio.create_task(self._lead(control))
        summaries = asyncio.create_task(self._summaries())
        try:
            done, _ = await asyncio.wait({heart, work}, return_when=asyncio.FIRST_COMPLETED)
            for task in (heart, work):
                if task not in done:
                    if task is work:
                        await self._wind_down(work)
                    else:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
        finally:
            summaries.cancel()
            await asyncio.gather(summaries, return_exceptions=True)
        for task in done:
            task.result()  # raises what ended it (a lost database connection)

    def rows_written(self) -> int:
        current = sum(self.engine.reporter.written.values()) if self.engine is not None else 0
        return self.rows_before + current

    async def _lags(self, conn: AsyncConnection) -> list[str]:
        """The lag of each dataset collected, as the summary line prints them."""
        if not self.clock.samples:
            return []
        cur = await asyncio.wait_for(
            conn.execute(
                query("collect", "lags"),
                {"now": self.clock.now(), "currencies": self.s.currencies, "kinds": self.s.kinds},
            ),
            BEAT_TIMEOUT_S,
        )
        return [f"{d} {age(lag)}" for d, lag in await cur.fetchall()]

    def _summary(self, lags: list[str], since: Totals) -> Totals:
        """Log one line on how collecting goes; return the totals the next line counts from."""
        now = Totals.of(self)
        log.info(
            "%s: %s rows written, %s requests in %s; lag %s",
            self.state,
            f"{now.rows - since.rows:,}",
            f"{now.requests - since.requests:,}",
            age(timedelta(seconds=now.at - since.at)),
            ", ".join(lags) or "unknown",
        )
        return now

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
        """Beat every HEARTBEAT_S until stopped; raises when the lock connection is gone (leadership lost). Nothing
        else runs on the lock connection or in this loop: a slow query must never age the lease."""
        while not self.stop.is_set():
            exchange_now = self.clock.now() if self.clock.samples else None
            error, self.error = self.error, None
            try:
                await self.lead.beat(self.state, exchange_now=exchange_now, run_id=self.run_id, error=error)
            except (psycopg.Error, TimeoutError, LeadershipLost):
                self.ending.set()  # the lock connection is gone, so is the lock: stop leading at once
                raise
            self.health.watchdog.progress(self.state)
            if error:
                self.health.fail(error)
            elif self.state == "collecting":
                self.health.success()
            await self.stop.sleep(HEARTBEAT_S)

    async def _summaries(self) -> None:
        """Every DERIBIT_TS_COLLECT_SUMMARY_S, one line: the lag of each dataset, rows written and requests sent.
        Its query runs on a connection of its own: on the lock connection it would delay the heartbeat, and a
        lag query slowed by a busy server would let a standby take over a leader that is working."""
        every = summary_s()
        since = Totals.of(self)
        conn: AsyncConnection | None = None
        try:
            while True:
                await self.stop.sleep(every)
                if self._ended():
                    return
                try:
                    if conn is None:
                        conn = await connect_async(self.dsn, application_name=application_name())
                    lags = await self._lags(conn)
                except (psycopg.Error, DatabaseUnavailable, TimeoutError):
                    lags = []  # the line says "lag unknown"; a new connection next time (a timed-out one may be busy)
                    if conn is not None:
                        await conn.close()
                    conn = None
                since = self._summary(lags, since)
        finally:
            if conn is not None:
                await conn.close()

    async def _lead(self, control: AsyncConnection) -> None:
        """Collect; an exchange outage pauses collecting (still leading) until the exchange answers."""
        while not self._ended():
            try:
                await self._collect(control)
                return
            except ExchangeUnavailableError as exc:
                self._fail(f"exchange unavailable: {exc.detail}", state="exchange unavailable")
                await self._wait_for_exchange()  # then collect again: new jobs, whose first runs are full checks
            except UnexpectedReplyError as exc:  # the clock or the index list answered out of shape: as an outage
                self._fail(str(exc), state="exchange answers out of shape")
                await self._wait_for_exchange()

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
            except UnexpectedReplyError as exc:
                self._fail(str(exc), state="exchange answers out of shape")

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
        jobs = self.jobs
        jobs.origin = await plan.ensure_origin(control, self.s.since, now)
        jobs.indexes = await instruments.check_indexes(
            self.client, [f"{c.lower()}_usd" for c in self.s.currencies], keep_unlisted=False
        )
        await _release_previous_leaders_tasks(control)
        catalogue = jobs.catalogue_conn = await connect_async(self.dsn, application_name=application_name())
        try:
            if await jobs.catalogue_stale(now):  # else a previous leader just refreshed it
                try:
                    await jobs.catalogue(catalogue, now, True)
                    await plan.record_job(control, "catalogue", now)
                except (ExchangeError, UnexpectedReplyError) as exc:  # collect with the stored catalogue meanwhile
                    self._fail(f"catalogue: {' '.join(str(exc).split())[:300]}")
                    await plan.record_job(control, "catalogue", now, error=self.error)
            self.rows_before = self.rows_written()  # (an outage restarts collecting with a new engine)
            self.engine = CollectorEngine(
                self.dsn,
                self.client,
                self.run_id,
                await instruments.name_to_id(control),
                now,
                self.s.workers,
                self.s.fresh_workers,
                self.history,
            )
            jobs.engine = self.engine
            scheduled = jobs.schedule(self.clock.now())
            engine_task = asyncio.create_task(self.engine.run_forever())
            self.state = "collecting"
            try:
                await self._schedule(scheduled, engine_task, control)
            finally:
                self.engine.stop()
                for job in scheduled:
                    if job.task is not None:
                        job.task.cancel()
                await asyncio.gather(*(j.task for j in scheduled if j.task), return_exceptions=True)
                try:
                    await asyncio.wait_for(asyncio.shield(engine_task), STOP_GRACE_S)
                except TimeoutError:
                    engine_task.cancel()
                    await asyncio.gather(engine_task, return_exceptions=True)
            if engine_task.done() and not engine_task.cancelled() and engine_task.exception() is not None:
                raise engine_task.exception()
        finally:
            await catalogue.close()

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
            self._fail(f"{job.name}: {server_reason(exc)[:300]}")
            await plan.record_job(control, job.name, self.clock.now(), error=self.error)
        else:
            await plan.record_job(control, job.name, self.clock.now())

    async def _report_task_errors(self, control: AsyncConnection) -> None:
        """Failed tasks (the next plan retries their range) are counted per dataset and reported once."""
        for dataset, count in self.engine.errors.items():
            new = count - self.reported_errors.get(dataset, 0)
            if new > 0:
                self.reported_errors[dataset] = count
                error = self.engine.last_errors.get(dataset) or f"{dataset}: a task failed"
                self._fail(error)
                await plan.record_job(control, dataset, None, error=error, errors=new)


async def _release_previous_leaders_tasks(conn: AsyncConnection) -> None:
    """Only the leader works collector tasks (negative priorities), so any still marked running belong to a leader
    that died or lost its lock: take them back at once instead of waiting for their leases to expire."""
    await conn.execute(query("collect", "release_previous_leaders_tasks"))
