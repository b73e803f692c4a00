"""The trade tape kept current: every trade the collector's scans read is stored into deribit.trades.

A scan asks public/get_last_trades_by_currency_and_time for one currency and one kind of the route (kind=option:
the options; kind=future: futures and perpetuals), oldest first, 1,000 trades a page, from the oldest watermark of
the kinds it serves (deribit_ts.watermarks datasets option_trades, future_trades, perpetual_trades, by currency) to
the exchange's now. Each page commits on its own: its new trades (a trade already stored is left alone: trade_id is
unique, deribit.trades' key) and the daily sums of the options among them (deribit_ts.refresh_trade_days), so memory
stays one page. The watermarks advance to the scan's end only after every page committed. A scan has a connection
of its own: the jobs' shared control connection runs single statements, and another job's statement must not land
inside a page's transaction.

Paging by time, exactly. Inside one currency there is no trade_seq to page by (it numbers one instrument's trades),
so the next page starts at the newest millisecond of the last one: a page of oldest-first trades holds every trade
older than its last millisecond, and that millisecond is read again from its start, its trades already stored
being skipped by their trade_id. When a whole page lies inside one millisecond (more than 1,000 trades in it: a
liquidation cascade, a block trade of many legs), starting there again would return the same page forever; the
scan instead moves on by one millisecond and hands that millisecond to the by-instrument route, which pages by
trade_seq and so is exact however many trades share a millisecond: a trades task [ms, ms + 1 ms) per instrument
of the kind listed then, worked by the collector's engine. The cursor so moves forward with every page (no stall)
and every trade is either on a page or inside a millisecond given to the tasks (no loss).

Reach. The by-currency route serves the last 24 hours only (an older start returns nothing). A watermark older
than REACH (an outage of a day or more) is caught up by the same by-instrument route: trades tasks for the gap,
one per instrument of the kind listed in it, planned in the transaction that moves the watermark past the gap.
Until the tasks are done the gap is theirs: `deribit-ts status` counts the trades' lag from the oldest unfinished
one (deribit_ts.collector_freshness), and a restarted collector takes them up again (their keys stay claimable).

Trail. Each scan reads again TRAIL of trades before where the previous one ended (the option scan longer: the
candles it plans must be fetched once settled), so a trade that became visible a little after the exchange's time
the scan asked up to (clocks are estimated, matching takes its time) is still stored.

Coverage. A scan read every trade of its kinds inside its span, so each instrument of those kinds listed then (or
seen trading) gets the span as its trades coverage (deribit_ts.record_scan_coverage), less the milliseconds handed
to the by-instrument route (their tasks record those): `deribit-ts coverage --dataset trades` and the
candle_trades_mismatch rule see what the collector stored. Final up to the scan's end less the next one's trail: what it
reads again is not final yet. Recorded with the watermarks, once every page committed: a page's own
transaction could only claim up to its last millisecond, a record per instrument and page; a kill between the pages
and the watermarks leaves trades without coverage, which the next scan reads again (the watermarks did not move)
and records. The records of one instrument merge as they settle, so they stay a few whatever the scans' count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg import AsyncConnection

from deribit_ts.collect.budget import CATCH_UP
from deribit_ts.db.queries import query
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest import tasks, trades
from deribit_ts.ingest.options import is_option
from deribit_ts.timeutil import from_ms, to_ms

PAGE = trades.PAGE
REACH = timedelta(hours=23)  # the by-currency route serves 24 hours: an hour of margin for clocks and slow scans
TRAIL = timedelta(minutes=1)
WATERMARKS = {"option": "option_trades", "future": "future_trades", "perpetual": "perpetual_trades"}


def kind_of(name: str) -> str:
    if is_option(name):
        return "option"
    return "perpetual" if name.endswith("PERPETUAL") else "future"


@dataclass
class Scan:
    """What one scan of a currency read and what it leaves to the by-instrument route."""

    currency: str
    kinds: list[str]
    until: datetime  # the watermarks' next value
    start: datetime | None = None  # every trade of the kinds from here to `until` was read, but `crowded`
    trail: timedelta = TRAIL  # this scan read this much before the previous one's end again
    settle: timedelta = TRAIL  # the next scan reads at least this much before `until` again: final up to there
    crowded: list[tuple[datetime, datetime]] = field(default_factory=list)  # milliseconds left to the tasks
    names: set[str] = field(default_factory=set)  # instruments with a trade in the scanned window
    stored: int = 0  # trades new to the table
    gaps: list[tuple[str, datetime, datetime]] = field(default_factory=list)  # (kind, from, until) for tasks
    beyond: list[tuple[str, datetime, datetime]] = field(default_factory=list)  # those beyond the route's reach


async def watermark(conn: AsyncConnection, kind: str, currency: str) -> datetime | None:
    cur = await conn.execute(query("collect", "trades_watermark"), {"dataset": WATERMARKS[kind], "currency": currency})
    row = await cur.fetchone()
    return row[0] if row else None


async def scan(
    conn: AsyncConnection,
    client: DeribitClient,
    currency: str,
    kinds: list[str],
    origin: datetime | None,
    now: datetime,
    trail: timedelta = TRAIL,
    settle: timedelta | None = None,
) -> Scan:
    """Store the trades of `kinds` (option alone, or future and/or perpetual) of `currency` from `trail` before
    their oldest watermark up to `now` (a kind without a watermark: from `origin`, at most as far
    back as the route reaches; older trades are for `deribit-ts backfill trades`). What lies beyond the route's
    reach and any millisecond of more than a page are left in `gaps`: commit() plans them and advances the
    watermarks."""
    out = Scan(currency, kinds, now, trail=trail, settle=trail if settle is None else settle)
    reach = now - REACH
    marks = {}
    for kind in kinds:
        mark = await watermark(conn, kind, currency)
        if mark is not None and mark < reach:
            out.gaps.append((kind, mark, reach))
            out.beyond.append((kind, mark, reach))
        marks[kind] = mark or max(origin or reach, reach)  # a kind's first scan: at most as far as the route reaches
    start = max(min(min(marks.values()), now) - trail, reach)
    route = "option" if kinds == ["option"] else "future"
    # Up to the exchange's own time as it answers, not our estimate of it (which may run ahead when a busy process
    # measured it late): every trade up to there exists when the pages are asked for, so the watermark is exact.
    end = min(to_ms(now), await client.get_time())
    out.until = from_ms(end)
    out.start = start
    cursor = to_ms(start)
    while cursor <= end:
        page, has_more = await _page(client, currency, route, cursor, end)
        kept = [(name, row) for name, row in page if cursor <= row[0] <= end and kind_of(name) in kinds]
        out.names.update(name for name, _ in kept)
        if kept:
            async with conn.transaction():
                out.stored += await trades.store_new(conn, kept)
        if not has_more:
            break
        if not page:  # moving the watermark on would skip what the exchange says is there
            raise UnexpectedReplyError(
                f"get_last_trades_by_currency_and_time({currency}, {route}): has_more is true but no trade came back"
            )
        last = max(row[0] for _, row in page)
        if last <= cursor:  # a whole page inside one millisecond: the by-instrument route takes that millisecond
            out.gaps += [(kind, from_ms(cursor), from_ms(cursor + 1)) for kind in kinds]
            out.crowded.append((from_ms(cursor), from_ms(cursor + 1)))
            last = cursor + 1
        cursor = last
    return out


async def _page(client: DeribitClient, currency: str, route: str, start_ms: int, end_ms: int):
    reply = await client.call(
        "get_last_trades_by_currency_and_time",
        {"currency": currency, "kind": route, "start_timestamp": start_ms, "end_timestamp": end_ms, "count": PAGE,
         "sorting": "asc"},
    )  # fmt: skip
    try:
        return trades.parse_any_page(reply)
    except trades.BadTrade as exc:
        raise UnexpectedReplyError(
            f"get_last_trades_by_currency_and_time({currency}, {route}): the exchange's reply is not as documented "
            f"({exc})"
        ) from None


async def commit(conn: AsyncConnection, scan: Scan, run_id: int | None = None) -> int:
    """In one transaction: plan the scan's gaps as trades tasks (the by-instrument route, on the history host),
    record what it read as its instruments' coverage and advance its watermarks to its end. Returns how many tasks
    were planned."""
    planned = 0
    async with conn.transaction():
        for kind, start, end in scan.gaps:
            for name in await listed(conn, scan.currency, kind, start, end):
                planned += await _plan(conn, name, start, end)
        await _record_coverage(conn, scan, run_id)
        for kind in scan.kinds:
            await conn.execute(
                query("collect", "trades_watermark_advance"),
                {"dataset": WATERMARKS[kind], "currency": scan.currency, "until": scan.until},
            )
    return planned


async def _record_coverage(conn: AsyncConnection, scan: Scan, run_id: int | None) -> None:
    """The scan's span, less its crowded milliseconds, as the trades coverage of every instrument of its kinds
    listed in it or seen trading in it."""
    if scan.start is None or scan.start >= scan.until:
        return
    starts, ends, at = [], [], scan.start
    for lo, hi in sorted(scan.crowded):
        if at < lo:
            starts.append(at)
            ends.append(min(lo, scan.until))
        at = max(at, hi)
    if at < scan.until:
        starts.append(at)
        ends.append(scan.until)
    keys: set[str] = {name for name in scan.names if kind_of(name) in scan.kinds}
    for kind in scan.kinds:
        keys.update(await listed(conn, scan.currency, kind, scan.start, scan.until))
    await conn.execute(
        query("collect", "trades_scan_coverage"),
        {
            "keys": sorted(keys),
            "starts": starts,
            "ends": ends,
            "final_until": scan.until - scan.settle,
            "run_id": run_id,
        },
    )


async def _plan(conn: AsyncConnection, name: str, start: datetime, end: datetime) -> int:
    return await tasks.plan(conn, "trades", name, start, end, trades.for_key(name).task_span, CATCH_UP)


async def listed(conn: AsyncConnection, currency: str, kind: str, start: datetime, end: datetime) -> list[str]:
    """The instruments of `kind` and `currency` listed at some time in [start, end) (the catalogue's knowledge)."""
    cur = await conn.execute(
        query("collect", "trades_instruments"),
        {
            "currency": currency,
            "kind": "option" if kind == "option" else "future",
            "perpetual": kind == "perpetual",
            "start": start,
            "end": end,
        },
    )
    return [name for (name,) in await cur.fetchall()]


async def open_keys(conn: AsyncConnection) -> list[str]:
    """Instruments with collector tasks not done that no other job names: trades tasks (planned by a scan for a gap
    or a crowded millisecond) and option candles (an option that traded before a restart, or was listed in a gap
    beyond the route's reach)."""
    cur = await conn.execute(query("collect", "open_keys"))
    return sorted(key for (key,) in await cur.fetchall())
