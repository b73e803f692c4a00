"""Snapshot rounds of the live option chain into deribit.option_snapshots (greeks and IVs cannot be backfilled).

One round per call: the exchange's time (public/get_time) is the round's `ts`, shared by every row, so a smile is
read at one instant; each row also keeps its quote's own timestamp (`quote_ts`). The bulk book summary (one
request per currency) lists the live chain with marks, mark IVs, underlyings and open interest; then one `ticker`
per option adds the exchange's greeks and bid/ask IVs, paced by the client's credit limiter (about 40 s for 800
options at 20 requests/s). With `bulk_only` the greeks come from SQL (deribit.black76_greeks on the mark IV).
Everything of a round is written in ONE transaction: a killed round leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import AsyncConnection, sql

from deribit_ts.config import DEFAULT_MAX_RETRIES, env_int
from deribit_ts.db.connect import connect_async
from deribit_ts.db.queries import compose, query
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import ExchangeError, RetriesExhaustedError, UnexpectedReplyError
from deribit_ts.exchange.limiter import CreditLimiter
from deribit_ts.ingest import instruments, round_research
from deribit_ts.ingest.load import Table, copy_rows
from deribit_ts.ingest.runlog import RunLog
from deribit_ts.timeutil import from_ms

log = logging.getLogger(__name__)

# The staging table's columns: what the exchange sent, before the greeks are completed in SQL.
STAGING = Table(
    "pg_temp",
    "snapshot_round",
    (
        "instrument_id",
        "quote_ts",
        "underlying_price",
        "underlying_index",
        "index_price",
        "mark_price",
        "mark_iv",
        "bid_iv",
        "ask_iv",
        "best_bid_price",
        "best_ask_price",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        "interest_rate",
        "open_interest",
        "greeks_source",
    ),
    (
        "int4",
        "timestamptz",
        "float8",
        "text",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "text",
    ),
    ("instrument_id",),
)


def staging_ddl() -> sql.Composed:
    """The round's staging table (pg_temp.snapshot_round, emptied at commit) with STAGING's columns."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
        for c, t in zip(STAGING.columns, STAGING.types, strict=True)
    )
    return compose("snapshots", "staging", columns=columns)


@dataclass
class SnapshotResult:
    ts: datetime  # the round's exchange time: every row's `ts`
    options: int  # rows written
    by_currency: dict[str, int] = field(default_factory=dict)
    requests: int = 0  # exchange requests of the round (retries included)
    seconds: float = 0.0
    bulk_only: bool = False
    greeks_from_sql: int = 0  # rows whose greeks came from SQL (all with bulk_only; failed tickers otherwise)
    skipped: list[str] = field(default_factory=list)  # expired mid-round (ticker: not found) or not in the catalogue
    written: int = 0  # new rows: fewer than `options` only if a round at the same exchange instant was stored

    def as_dict(self) -> dict:
        return {
            "ts": self.ts.isoformat(),
            "options": self.options,
            "by_currency": self.by_currency,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "bulk_only": self.bulk_only,
            "greeks_from_sql": self.greeks_from_sql,
            "skipped": self.skipped,
            "written": self.written,
        }


def _number(value) -> float | None:
    return None if value in (None, "") else float(value)


def _row(instrument_id: int, summary: dict, ticker: dict | None) -> tuple:
    """One staging row: the ticker's values where we have it, else the book summary's (greeks then from SQL)."""
    if ticker is None:
        return (
            instrument_id,
            from_ms(int(summary["creation_timestamp"])),
            _number(summary.get("underlying_price")),
            summary.get("underlying_index"),
            _number(summary.get("estimated_delivery_price")),
            _number(summary.get("mark_price")),
            _number(summary.get("mark_iv")),
            None,
            None,
            _number(summary.get("bid_price")) or None,
            _number(summary.get("ask_price")) or None,
            None,
            None,
            None,
            None,
            None,
            _number(summary.get("interest_rate")),
            _number(summary.get("open_interest")),
            "sql",
        )
    greeks = ticker.get("greeks") or {}
    return (
        instrument_id,
        from_ms(int(ticker["timestamp"])),
        _number(ticker.get("underlying_price")),
        ticker.get("underlying_index"),
        _number(ticker.get("index_price")),
        _number(ticker.get("mark_price")),
        _number(ticker.get("mark_iv")),
        _number(ticker.get("bid_iv")),
        _number(ticker.get("ask_iv")),
        # an empty side: Deribit documents null; 0 seen too. Either way: no quote.
        _number(ticker.get("best_bid_price")) or None,
        _number(ticker.get("best_ask_price")) or None,
        *(_number(greeks.get(k)) for k in ("delta", "gamma", "vega", "theta", "rho")),
        _number(ticker.get("interest_rate")),
        _number(ticker.get("open_interest")),
        "ticker",
    )


async def _chain(client: DeribitClient, currencies: Sequence[str]) -> dict[str, list[dict]]:
    """The live chain of each currency: one bulk book summary request per currency."""
    replies = await asyncio.gather(*(client.get_book_summary_by_currency(c, kind="option") for c in currencies))
    return {c: [s for s in reply if s.get("instrument_name")] for c, reply in zip(currencies, replies, strict=True)}


async def _known_ids(conn: AsyncConnection, client: DeribitClient, chain: dict[str, list[dict]]) -> dict[str, int]:
    """Catalogue ids of every option in the chain; options listed since the catalogue was loaded are fetched
    (one get_instruments per currency that has any)."""
    ids = await instruments.name_to_id(conn)
    for currency, summaries in chain.items():
        if any(s["instrument_name"] not in ids for s in summaries):
            await instruments.store(conn, await client.get_instruments(currency=currency, kind="option"))
            ids = await instruments.name_to_id(conn)
    return ids


async def _tickers(
    client: DeribitClient, names: list[str], on_ticker: Callable[[int, int], None] | None, skipped: list[str]
) -> dict[str, dict]:
    """One ticker per option, all queued at once: the client's limiter paces them at the allowance. An option that
    expired during the round (its ticker is no longer open, or the exchange no longer knows it) is skipped; one
    whose ticker keeps failing keeps its bulk row."""
    done = 0

    async def one(name: str) -> tuple[str, dict | None]:
        nonlocal done
        try:
            ticker = await client.ticker(name)
            if ticker.get("state", "open") != "open":  # expired (closed, settling) since the book summary
                skipped.append(name)
                return name, None
            return name, ticker
        except ExchangeError as exc:
            if exc.code == -32602:  # instrument not found: no longer live
                skipped.append(name)
                return name, None
            if isinstance(exc, RetriesExhaustedError):
                log.warning("ticker %s kept failing (%s); its greeks come from SQL", name, exc)
                return name, None
            raise
        except UnexpectedReplyError as exc:  # refused (exchange/replies.py): the book summary's checked row stays
            log.warning("%s; its row comes from the book summary, its greeks from SQL", exc)
            return name, None
        finally:
            done += 1
            if on_ticker is not None:
                on_ticker(done, len(names))

    return {name: t for name, t in await asyncio.gather(*(one(n) for n in names)) if t is not None}


async def _summarize(conn: AsyncConnection, currency: str, ts: datetime) -> None:
    """The round's research rows (round_research), in a savepoint: should they fail, the round is still stored and
    `deribit-ts refresh` summarizes it later."""
    try:
        async with conn.transaction():
            await round_research.summarize_round_async(conn, currency, ts)
    except psycopg.Error as exc:
        log.warning(
            "research rows of the %s round at %s not written (%s); `deribit-ts refresh` retries",
            currency,
            ts.isoformat(),
            str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__,
        )


async def take_snapshot(
    conn: AsyncConnection,
    client: DeribitClient,
    currencies: Sequence[str] = ("BTC", "ETH"),
    *,
    bulk_only: bool = False,
    run_id: int | None = None,
    on_ticker: Callable[[int, int], None] | None = None,
    research: bool = True,
) -> SnapshotResult:
    """Take one snapshot round of the live option chain of `currencies` and write it in one transaction.

    `conn` must not be inside a transaction. `on_ticker(done, total)` is called after every ticker (progress).
    `research`: also write the round's research rows (round_research: about a second per currency of numpy
    fitting); without, `deribit-ts refresh` writes them later."""
    started = time.monotonic()
    requests_before = client.stats.requests
    currencies = [c.upper() for c in currencies]
    ts = from_ms(await client.get_time())
    chain = await _chain(client, currencies)
    ids = await _known_ids(conn, client, chain)
    # An option the catalogue still lacks after a refresh (get_instruments does not list it) cannot be stored.
    skipped = sorted(
        s["instrument_name"] for summaries in chain.values() for s in summaries if s["instrument_name"] not in ids
    )
    if skipped:
        log.warning(
            "%d option(s) of the book summary are not in the instrument list, e.g. %s: not stored",
            len(skipped),
            skipped[0],
        )
    names = [s["instrument_name"] for summaries in chain.values() for s in summaries if s["instrument_name"] in ids]
    tickers = {} if bulk_only else await _tickers(client, names, on_ticker, skipped)
    rows, by_currency = [], {}
    for currency, summaries in chain.items():
        gone = set(skipped)
        mine = [
            _row(ids[s["instrument_name"]], s, tickers.get(s["instrument_name"]))
            for s in summaries
            if s["instrument_name"] not in gone
        ]
        rows.extend(mine)
        by_currency[currency] = len(mine)
    seconds = time.monotonic() - started
    async with conn.transaction():
        await conn.execute(staging_ddl())
        await copy_rows(conn, STAGING, rows, into=sql.Identifier("pg_temp", "snapshot_round"))
        written = (await conn.execute(query("snapshots", "write"), {"ts": ts})).rowcount
        for currency, count in by_currency.items():
            await conn.execute(
                query("snapshots", "round"),
                {
                    "currency": currency,
                    "ts": ts,
                    "options": count,
                    "bulk_only": bulk_only,
                    "run_id": run_id,
                    "seconds": seconds,
                },
            )
        if research:
            for currency in by_currency:
                await _summarize(conn, currency, ts)
    return SnapshotResult(
        ts,
        len(rows),
        by_currency,
        client.stats.requests - requests_before,
        time.monotonic() - started,
        bulk_only,
        sum(1 for r in rows if r[-1] == "sql"),
        sorted(skipped),
        written,
    )


async def run_snapshot(
    dsn: str,
    api_url: str,
    currencies: Sequence[str] = ("BTC", "ETH"),
    *,
    bulk_only: bool = False,
    command: str = "snapshot options",
    on_ticker: Callable[[int, int], None] | None = None,
) -> dict:
    """One logged round: opens the exchange client and the database, records the round in deribit_ts.runs, and
    returns its summary (the --json output). Unknown currencies are refused in one line before anything is
    written."""
    if os.name == "posix":  # SIGTERM cancels the round like Ctrl-C: nothing of it is written
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    retries = env_int("DERIBIT_TS_MAX_RETRIES", DEFAULT_MAX_RETRIES)
    conn = await connect_async(dsn, application_name="deribit-ts snapshot")
    async with conn, DeribitClient(api_url, limiter=CreditLimiter.from_env(), max_retries=retries) as client:
        currencies = await instruments.resolve_currencies(client, currencies)
        arguments = {"currencies": currencies, "bulk_only": bulk_only}
        # (no traffic logging on the side: the round is one transaction on this same connection)
        async with RunLog(conn, command, arguments, client, log_traffic=False) as run:
            result = await take_snapshot(
                conn, client, currencies, bulk_only=bulk_only, run_id=run.run_id, on_ticker=on_ticker
            )
        summary = result.as_dict()
        summary.update({"run_id": run.run_id, "status": run.status, "exchange": client.stats.as_dict()})
        return summary
