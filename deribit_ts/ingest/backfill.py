"""A backfill run: refresh the catalogue, plan what is missing, work the plan, log the run.

What each dataset wants is computed in SQL from the catalogue and the exchange's clock: an instrument's
candles from its creation to its expiry or to the last closed minute (the current minute is still
forming and is never stored); a perpetual's funding to the last whole hour; an index's history to the
last closed minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from deribit_ts.config import DEFAULT_MAX_RETRIES, env_int
from deribit_ts.db.connect import connect_async
from deribit_ts.db.queries import query
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.limiter import DEFAULT_BUCKET, CreditLimiter
from deribit_ts.ingest import delivery, dvol, index, instruments, options, rollups, sanity, tasks, trades
from deribit_ts.ingest.engine import DATASET_BY_NAME, Engine
from deribit_ts.ingest.progress import Reporter
from deribit_ts.ingest.runlog import RunLog
from deribit_ts.timeutil import EPOCH, check_order, from_ms

log = logging.getLogger(__name__)

DATASETS = (
    "instruments",
    "funding",
    "index",
    "dvol",
    "delivery",
    "candles",
    "trades",
)  # the order `backfill all` plans them in
KINDS = ("perpetual", "future", "option")

# Rows are keyed by their open time, one per step (the row step of each dataset); a row belongs to a request
# when since <= ts < until. Bounds are aligned UP to the step before planning, so coverage only ever records
# whole steps: [10:00, 11:00:30) holds the 11:00 candle, and is planned as [10:00, 11:01).
STEPS = {
    "candles": timedelta(minutes=1),
    "funding": timedelta(hours=1),
    "index": timedelta(minutes=1),
    "dvol": timedelta(minutes=1),
    "delivery": timedelta(minutes=1),
    "trades": timedelta(minutes=1),  # (trades have milliseconds; their windows start and end on whole minutes)
}

# Lower runs first, following `backfill all`'s documented order: funding, the index, DVOL and delivery prices
# (a few cheap requests per key) before any candles. Among candles (deribit_ts.candle_priority): the critical tier
# first (expired, or expiring within 7 days: what the exchange may stop serving), then by days to expiry,
# perpetuals last; within one priority the soonest expiry (`due`) first.
FUNDING_PRIORITY = 1
INDEX_PRIORITY = 2
DVOL_PRIORITY = 3
DELIVERY_PRIORITY = 4


@dataclass
class BackfillRequest:
    datasets: list[str]
    currencies: list[str] = field(default_factory=lambda: ["BTC", "ETH"])
    kinds: list[str] = field(default_factory=lambda: ["perpetual", "future"])
    instruments: list[str] | None = None
    indexes: list[str] = field(default_factory=lambda: list(("btc_usd", "eth_usd")))
    indexes_named: bool = True  # False: <currency>_usd of each currency, those the exchange lacks dropped
    since: datetime | None = None
    until: datetime | None = None
    workers: int = 16
    trade_kinds: list[str] | None = None  # kinds whose trades are wanted (None: `kinds`)


@dataclass
class Plan:
    keys: dict[str, list[str]] = field(default_factory=dict)  # dataset -> keys planned
    new_tasks: dict[str, int] = field(default_factory=dict)
    # dataset -> the [from, until) the request bounds it to (None: unbounded): the run works only the tasks inside,
    # never the rest of an earlier plan for the same keys
    within: tasks.Within = field(default_factory=dict)


async def _wants(
    conn: AsyncConnection, req: BackfillRequest, kinds: list[str], unit: str, horizon: datetime, now: datetime
) -> list[tuple]:
    cur = await conn.execute(
        query("backfill", "instrument_wants"),
        {
            "unit": unit,
            "default_start": datetime(2016, 1, 1, tzinfo=UTC),
            "since": req.since or datetime.min.replace(tzinfo=UTC),
            "until": req.until or datetime.max.replace(tzinfo=UTC),
            "horizon": horizon,
            "now": now,
            "currencies": [c.upper() for c in req.currencies],
            "perpetual": "perpetual" in kinds,
            "future": "future" in kinds,
            "option": "option" in kinds,
            "names": req.instruments,
        },
    )
    return await cur.fetchall()


def _series_wants(
    dataset: str,
    req: BackfillRequest,
    since: datetime | None,
    until: datetime,
    first_points: dict[tuple[str, str], datetime | None],
) -> list[tuple]:
    """(key, from, until, priority, due) of the series not keyed by instrument: indexes, DVOL, delivery prices."""
    if dataset == "dvol":
        return [(c, since or dvol.HISTORY_START, until, DVOL_PRIORITY, None) for c in req.currencies]
    priority = DELIVERY_PRIORITY if dataset == "delivery" else INDEX_PRIORITY
    starts = {name: since or first_points.get((dataset, name)) for name in req.indexes}
    return [(name, start, until, priority, None) for name, start in starts.items() if start is not None]


async def series_starts(client: DeribitClient, req: BackfillRequest) -> dict[tuple[str, str], datetime | None]:
    """Without --since: where the exchange's history of each index (prices, deliveries) starts."""
    if req.since is not None:
        return {}
    starts: dict[tuple[str, str], datetime | None] = {}
    for name in req.indexes:
        if "index" in req.datasets:
            starts["index", name] = await index.first_point(client, name)
        if "delivery" in req.datasets:
            starts["delivery", name] = await delivery.first_delivery(client, name)
    return starts


def align_up(value: datetime, step: timedelta) -> datetime:
    """The first multiple of `step` (counted from the epoch) at or after `value`."""
    return EPOCH + -((EPOCH - value) // step) * step


def _aligned(req: BackfillRequest, step: timedelta) -> BackfillRequest:
    return replace(req, since=req.since and align_up(req.since, step), until=req.until and align_up(req.until, step))


async def make_plan(
    conn: AsyncConnection,
    req: BackfillRequest,
    now: datetime,
    first_points: dict[tuple[str, str], datetime | None] | None = None,
) -> Plan:
    """The tasks of a request. Without --since an index (its prices, its deliveries) is wanted from where the
    exchange's history of it starts (`first_points`, by (dataset, index name): series_starts; an index the exchange
    has no history of is not planned)."""
    plan = Plan()
    last_minute = now.replace(second=0, microsecond=0)
    for dataset in req.datasets:
        if dataset not in STEPS:
            continue
        step = STEPS[dataset]
        aligned = _aligned(req, step)
        if dataset == "candles":
            wants = await _wants(conn, aligned, req.kinds, "minute", last_minute, now)
        elif dataset == "trades":
            wants = await _wants(conn, aligned, req.trade_kinds or req.kinds, "minute", last_minute, now)
        elif dataset == "funding":
            # A funding row at hh:00 is final at hh:00; ask up to the next whole hour (exclusive).
            horizon = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            wants = [
                (key, start, end, FUNDING_PRIORITY, None)
                for key, start, end, *_ in await _wants(conn, aligned, ["perpetual"], "hour", horizon, now)
            ]
        else:
            until = min(aligned.until or last_minute, last_minute)
            wants = _series_wants(dataset, req, aligned.since, until, first_points or {})
        span = DATASET_BY_NAME[dataset].task_span
        plan.keys[dataset] = [key for key, *_ in wants]
        plan.within[dataset] = (aligned.since, aligned.until)
        plan.new_tasks[dataset] = 0
        for key, start, end, priority, due in wants:
            # An expiry off the step (none known so far) still ends on a whole step: its last row is in.
            # (Every horizon is a whole step already, so this never reaches past it.)
            start, end = align_up(start, step), align_up(end, step)
            if dataset == "trades":
                span = trades.for_key(key).task_span
            plan.new_tasks[dataset] += await tasks.plan(conn, dataset, key, start, end, span, priority, due)
    return plan


# Deribit limits unauthenticated public requests per IP (docs/deribit.md, Rate limits), so the backfill processes of
# one host split the allowance: each counts the live runs of its host this often and uses 1/n of its scale.
SHARE_POLL_S = 2.0


async def share_allowance(conn: AsyncConnection, limiter: CreditLimiter, stop: asyncio.Event) -> asyncio.Task:
    """Set this process's limiter to 1/n of its allowance, n = live backfill runs on this host, and return the
    task that keeps it so until `stop` is set. A process that finds others already running refills nothing for
    a poll period first: the time they need to see it and shrink their own share."""
    runs = max(1, await tasks.live_local_runs(conn))
    limiter.set_share(1 / runs, pause_s=SHARE_POLL_S * 1.25 if runs > 1 else 0.0)
    _log_share(runs)
    return asyncio.create_task(_keep_sharing(conn, limiter, stop))


async def _keep_sharing(conn: AsyncConnection, limiter: CreditLimiter, stop: asyncio.Event) -> None:
    # Stopped by an event, not cancelled: a cancelled query could leave the run's own connection unusable.
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SHARE_POLL_S)
            return
        try:
            runs = max(1, await tasks.live_local_runs(conn))
        except psycopg.Error:  # the run's own work reports a lost database; keep the last share meanwhile
            continue
        if 1 / runs != limiter.share:
            limiter.set_share(1 / runs)
            _log_share(runs)


@contextlib.asynccontextmanager
async def allowance_shared(conn: AsyncConnection, limiter: CreditLimiter):
    """Share the host's allowance (share_allowance) for as long as the block runs (nothing if the limiter is off)."""
    if not limiter.enabled:
        yield
        return
    stop = asyncio.Event()
    sharing = await share_allowance(conn, limiter, stop)
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(sharing, return_exceptions=True)


def _log_share(runs: int) -> None:
    if runs > 1:
        log.info("%d backfill processes on this host share the rate limit: this one uses 1/%d", runs, runs)


async def _catalogue_needed(conn: AsyncConnection, req: BackfillRequest) -> bool:
    """Refresh the catalogue unless the run names instruments that are all known already (get_instruments
    is the exchange's most expensive call: 1 a second)."""
    if "instruments" in req.datasets:
        return True
    if not set(req.datasets) & {"candles", "funding", "trades"}:
        return False
    if not req.instruments:
        return True
    known = await instruments.name_to_id(conn)
    return not all(name in known for name in req.instruments)


async def _check_names(client: DeribitClient, conn: AsyncConnection, req: BackfillRequest) -> None:
    """Refuse unknown currencies, index and instrument names in one line, before the run is logged or anything
    planned. A named instrument missing from the stored catalogue is asked for by name (one cheap request, not a
    catalogue refresh), and stored when the exchange knows it."""
    if req.instruments:  # (first: an unknown name's prefix would otherwise be reported as an unknown currency)
        await instruments.resolve_unknown(client, conn, req.instruments)
        if "funding" in req.datasets:
            await instruments.check_perpetuals(conn, req.instruments)
    req.currencies = await instruments.resolve_currencies(client, req.currencies)
    if not req.indexes_named:
        req.indexes = [f"{currency.lower()}_usd" for currency in req.currencies]
    if {"index", "delivery"} & set(req.datasets):
        req.indexes = await instruments.check_indexes(client, req.indexes, keep_unlisted=req.indexes_named)


async def run_backfill(
    dsn: str, api_url: str, req: BackfillRequest, reporter: Reporter, command: str, history_url: str | None = None
) -> dict:
    """Run one backfill; return its summary (the --json output). Trades come from `history_url` (default: the API)."""
    check_order(req.since, req.until)
    async with _session(dsn, api_url, history_url) as (control, client, history):
        await _check_names(client, control, req)
        summary, catalogued = {}, 0
        # (the allowance is shared once the run is logged: the share counts the logged runs of this host)
        async with RunLog(control, command, req.__dict__, client) as run, allowance_shared(control, client.limiter):
            run_id = run.run_id
            now = from_ms(await client.get_time())
            if await _catalogue_needed(control, req):
                catalogue = await instruments.fetch_catalogue(client, req.currencies)
                catalogued = await instruments.store(control, catalogue)
                reporter.message(f"instruments: {catalogued} in the catalogue for {', '.join(req.currencies)}")
            plan = await make_plan(control, req, now, await series_starts(client, req))
            option_keys = [k for k in plan.keys.get("candles", []) if options.is_option(k)]
            tiers = await options.tier_plan(control, option_keys, now) if option_keys else None
            for dataset, keys in plan.keys.items():
                reporter.planned(dataset, await _open_tasks(control, dataset, keys, plan.within.get(dataset)))
            ids = await instruments.name_to_id(control)
            work = [d for d in req.datasets if d in plan.keys]
            all_keys = sorted({k for d in work for k in plan.keys[d]})
            # One connection per worker: start no more workers than there are tasks to work on.
            open_tasks = await tasks.unfinished(control, work, all_keys, within=plan.within) if work and all_keys else 0
            workers = min(req.workers, open_tasks)
            engine = Engine(dsn, client, run_id, ids, now, reporter, workers, history)
            summary = await _work(control, run, engine, plan, work, all_keys, plan.within)
            if tiers is not None:  # options planned, per urgency tier, as the run found them
                summary["tiers"] = {name: t["options"] for name, t in tiers.items()}
                summary["tier_plan"] = tiers
        return _closed(summary, run, catalogued, client)


@contextlib.asynccontextmanager
async def _session(dsn: str, api_url: str, history_url: str | None):
    """The control connection, the exchange's client and the history host's, with dead local workers' tasks
    released: what every backfill command (a planned run, a resume) works with."""
    # SIGTERM (systemd, kill) cancels the run like Ctrl-C does: workers stop, leases are released, the run
    # is logged as interrupted.
    if os.name == "posix":  # event loops elsewhere cannot watch signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    control = await connect_async(dsn, application_name="deribit-ts backfill")
    retries = env_int("DERIBIT_TS_MAX_RETRIES", DEFAULT_MAX_RETRIES)
    async with (
        control,
        DeribitClient(api_url, limiter=CreditLimiter.from_env(), max_retries=retries) as client,
        history_client(api_url, history_url, retries, client) as history,
    ):
        await tasks.recover_dead_local_workers(control)
        yield control, client, history


async def _work(
    control: AsyncConnection,
    run: RunLog,
    engine: Engine,
    plan: Plan,
    work: list[str],
    keys: list[str] | None,
    within: tasks.Within | None,
) -> dict:
    """Work the open tasks of `work` (`keys` and `within` restrict them unless None), refresh the rollups and the
    sanity findings, mark the run failed when a task failed; return the run's summary so far."""
    # The rollups are refreshed while the workers fetch, so the refresh at the end has only the last seconds'
    # candles left: a backfill at the allowance is not held up by its rollups.
    result, meanwhile = None, rollups.Meanwhile()
    if engine.workers:
        async with rollups.refreshing_meanwhile(engine.dsn) as meanwhile:
            result = await engine.run(work, keys, within)
    failed = result.failed if result else []
    final_began = time.monotonic()
    await rollups.refresh_after_run(control, run.run_id, meanwhile)
    refresh = {"final_s": round(time.monotonic() - final_began, 3), "meanwhile": meanwhile.as_dict()}
    await sanity.refresh_async(control)
    if failed:
        first, why = failed[0]
        run.status = "failed"
        run.error = f"{len(failed)} task(s) failed, the first: {first.dataset} {first.key}: {why}"
    summary = await summarize(control, run.run_id, plan)
    summary["left_for_resume"] = await tasks.left_for_resume(control)
    summary["rollups_refresh"] = refresh
    return summary


def _closed(summary: dict, run: RunLog, catalogued: int, client: DeribitClient) -> dict:
    """The summary of a closed run (the --json output): its outcome and its exchange traffic added."""
    summary.update(
        {
            "run_id": run.run_id,
            "status": run.status,
            "error": run.error,
            "instruments_catalogued": catalogued,
            "exchange": client.stats.as_dict(),
        }
    )
    return summary


@contextlib.asynccontextmanager
async def history_client(api_url: str, history_url: str | None, retries: int, client: DeribitClient):
    """The history host's client: the API's own when both are one server (one rate limit), else a second one with
    its own limiter (another host counts its own credits)."""
    if history_url is None or history_url.rstrip("/") == api_url.rstrip("/"):
        yield client
        return
    async with DeribitClient(history_url, limiter=CreditLimiter.from_env(), max_retries=retries) as history:
        yield history


async def run_resume(dsn: str, api_url: str, reporter: Reporter, workers: int, history_url: str | None = None) -> dict:
    """Work every unfinished backfill task, whichever run planned it (an interrupted `backfill all`, a bounded
    command's neighbours); return the summary (the --json output)."""
    async with _session(dsn, api_url, history_url) as (control, client, history):
        # The exchange's clock first: an unreachable exchange fails the command before a run is logged.
        now = from_ms(await client.get_time())
        async with (
            RunLog(control, "backfill resume", {"workers": workers}, client) as run,
            allowance_shared(control, client.limiter),
        ):
            lowest, highest = tasks.BACKFILL_PRIORITIES
            cur = await control.execute(query("backfill", "unfinished_keys"), {"lowest": lowest, "highest": highest})
            plan = Plan(keys=dict(await cur.fetchall()))
            for dataset, keys in plan.keys.items():
                reporter.planned(dataset, await _open_tasks(control, dataset, keys, None))
            work = list(plan.keys)
            count = await tasks.unfinished(control, work, None) if work else 0
            ids = await instruments.name_to_id(control)
            engine = Engine(dsn, client, run.run_id, ids, now, reporter, min(workers, count), history)
            summary = await _work(control, run, engine, plan, work, None, None)
        return _closed(summary, run, 0, client)


def allowance_per_s(limiter: CreditLimiter) -> float:
    """Requests a second the default bucket allows this process (Deribit's 20/s times the scale; a disabled limiter
    still plans at Deribit's own allowance)."""
    per_s = DEFAULT_BUCKET.refill_per_s / DEFAULT_BUCKET.cost
    return per_s * limiter.scale * limiter.share if limiter.enabled else per_s


async def dry_run(dsn: str, api_url: str, req: BackfillRequest) -> dict:
    """What a run would plan, per urgency tier of its options, without writing anything: the catalogue is read
    from the exchange and the plan made as a real run would, inside one transaction that is rolled back."""
    check_order(req.since, req.until)
    retries = env_int("DERIBIT_TS_MAX_RETRIES", DEFAULT_MAX_RETRIES)
    async with (
        await connect_async(dsn, autocommit=False, application_name="deribit-ts backfill") as conn,
        DeribitClient(api_url, limiter=CreditLimiter.from_env(), max_retries=retries) as client,
    ):
        now = from_ms(await client.get_time())
        async with conn.transaction(force_rollback=True):  # (a named instrument looked up is stored: rolled back)
            await _check_names(client, conn, req)
            if await _catalogue_needed(conn, req):
                await instruments.store(conn, await instruments.fetch_catalogue(client, req.currencies))
            plan = await make_plan(conn, req, now, await series_starts(client, req))
            dataset = "trades" if "trades" in req.datasets else "candles"
            keys = plan.keys.get(dataset, [])
            option_keys = [k for k in keys if options.is_option(k)]
            window_ms = trades.OPTION_TRADES.window_ms if dataset == "trades" else None
            tiers = await options.tier_plan(conn, option_keys, now, dataset, window_ms)
            others = (
                await trades.plan_of(conn, [k for k in keys if not options.is_option(k)])
                if dataset == "trades"
                else None
            )
        rate = allowance_per_s(client.limiter)
    for tier in tiers.values():
        tier["seconds"] = round(tier["requests"] / rate, 1)
    requests = sum(t["requests"] for t in tiers.values()) + (others["requests"] if others else 0)
    summary = {
        "dry_run": True,
        "tiers": {name: t["options"] for name, t in tiers.items()},
        "plan": tiers,
        "requests": requests,
        "seconds": round(requests / rate, 1),
        "allowance_per_s": rate,
        "exchange_time": now.isoformat(),
    }
    if others is not None:  # futures and perpetuals of a trades run: not tiered, fetched by their own windows
        others["seconds"] = round(others["requests"] / rate, 1)
        summary["futures"] = others
    return summary


async def _open_tasks(
    conn: AsyncConnection, dataset: str, keys: list[str], within: tuple[datetime | None, datetime | None] | None
) -> dict[str, int]:
    """Open tasks of every planned key that has a target (inside the run's bounds), 0 for those with nothing left to
    do: the same keys the summary's coverage counts, so the progress bar's "done/total keys" ends where the summary
    starts."""
    lower, upper = within or (None, None)
    cur = await conn.execute(
        query("backfill", "open_tasks_by_key"), {"lower": lower, "upper": upper, "dataset": dataset, "keys": keys}
    )
    return dict(await cur.fetchall())


async def summarize(conn: AsyncConnection, run_id: int, plan: Plan) -> dict:
    cur = await conn.execute(query("backfill", "run_datasets"), {"run_id": run_id})
    datasets = {
        d: {"tasks": t, "rows_fetched": f, "inserted": i, "revised": r, "requests": q, "retries": rt, "errors": e}
        for d, t, f, i, r, q, rt, e in await cur.fetchall()
    }
    coverage = {}
    for dataset, keys in plan.keys.items():
        cur = await conn.execute(query("backfill", "coverage"), {"dataset": dataset, "keys": keys})
        total, complete, rows = await cur.fetchone()
        coverage[dataset] = {"keys": total, "complete": complete, "rows": int(rows)}
        datasets.setdefault(
            dataset,
            {"tasks": 0, "rows_fetched": 0, "inserted": 0, "revised": 0, "requests": 0, "retries": 0, "errors": 0},
        )
    return {"datasets": datasets, "coverage": coverage, "new_tasks": plan.new_tasks}
