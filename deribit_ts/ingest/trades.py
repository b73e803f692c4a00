"""The trade tape: every trade of an instrument, active or expired, into deribit.trades.

Where trades come from: the history host (--history-url) serves every instrument's trades, expired ones included,
by the same paths as the API. A window [start, end) of one instrument is fetched like this:

1. public/get_last_trades_by_instrument_and_time(start, end - 1 ms, count=1000, sorting=asc): the oldest 1,000
   trades of the window (bounds are inclusive, hence end - 1 ms).
2. While the answer says has_more: public/get_last_trades_by_instrument(start_seq = the last trade_seq seen + 1,
   end_timestamp = end - 1 ms, count=1000, sorting=asc).

Why page by trade_seq and not by time: trade_seq numbers an instrument's trades in the order they happened, one
number per trade, so "every trade after this one" is exact however many trades share a millisecond. Paging by time
has to restart at the last page's millisecond and drop what it already has; when more than 1,000 trades share
that millisecond (a liquidation cascade, a block trade of many legs) the same page comes back forever and the
rest of the millisecond is never reached. The first page still goes by time because a window is a time range and
the trade_seq at its start is unknown.

Nothing is assumed about the replies beyond the documented fields: a page may be longer or shorter than asked,
out of order or repeat trades (the history host is reported to do so); trades outside the window are dropped,
the rest are sorted by trade_seq and a trade_id sent twice with different contents fails the window.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.queries import compose, query
from deribit_ts.exchange.client import DeribitClient, current_tally
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest.dataset import RangedDataset, Window
from deribit_ts.ingest.load import LoadResult, Table, copy_rows
from deribit_ts.ingest.options import is_option
from deribit_ts.timeutil import from_ms

PAGE = 1000  # Deribit's most trades a request (a larger count is an error)
# A window (one transaction, held in memory whole) aims at this many pages: the part-filled last page costs 2.5 %.
WINDOW_PAGES = 20
WINDOW_GROWTH = 4
MIN_WINDOW_MS = 60_000
MAX_LEARNED = 10_000  # instruments whose window length is remembered (an option chain is a few thousand)
MAX_TEXT = 64  # longest identifier accepted from the exchange (its ids are ~10-20 characters)

TRADES = Table(
    schema="deribit",
    name="trades",
    columns=(
        "instrument_name",
        "ts",
        "trade_id",
        "trade_seq",
        "price",
        "amount",
        "direction",
        "tick_direction",
        "mark_price",
        "index_price",
        "iv",
        "liquidation",
        "block_trade_id",
        "combo_id",
        "contracts",
        "block_trade_leg_count",
        "combo_trade_id",
    ),
    types=(
        "text",
        "timestamptz",
        "text",
        "int8",
        "float8",
        "float8",
        "text",
        "int2",
        "float8",
        "float8",
        "float8",
        "text",
        "text",
        "text",
        "float8",
        "int4",
        "text",
    ),
    key=("instrument_name", "ts", "trade_id"),
)

# A row: (timestamp ms, trade_id, trade_seq, price, amount, direction, tick_direction, mark_price, index_price, iv,
# liquidation, block_trade_id, combo_id, contracts, block_trade_leg_count, combo_trade_id)
_OPTIONAL_NUMBERS = ("mark_price", "index_price", "iv", "contracts")
_OPTIONAL_TEXTS = ("liquidation", "block_trade_id", "combo_id", "combo_trade_id")


class BadTrade(ValueError):
    """A trade not shaped or ranged as documented."""


def _number(trade: dict, field: str, *, required: bool) -> float | None:
    value = trade.get(field)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadTrade(f"{field} is {str(value)[:40]!r}, not a finite number")
    return float(value)


def _integer(trade: dict, field: str, *, required: bool) -> int | None:
    value = trade.get(field)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise BadTrade(f"{field} is {str(value)[:40]!r}, not a whole number >= 0")
    return value


def _text(trade: dict, field: str, *, required: bool) -> str | None:
    value = trade.get(field)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an id sent as a number is the same id
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
        raise BadTrade(f"{field} is {str(value)[:40]!r}, not an identifier")
    return value


def parse_trade(trade: object, instrument: str) -> tuple:
    """One trade of a reply as a row (see above), or BadTrade saying what is wrong."""
    if not isinstance(trade, dict):
        raise BadTrade(f"a trade is {type(trade).__name__}, not an object")
    if trade.get("instrument_name") != instrument:
        raise BadTrade(f"a trade of {str(trade.get('instrument_name'))[:40]!r} in the answer for {instrument}")
    ts = _integer(trade, "timestamp", required=True)
    price = _number(trade, "price", required=True)
    amount = _number(trade, "amount", required=True)
    if amount <= 0:
        raise BadTrade(f"amount is {amount}, not positive")
    direction = trade.get("direction")
    if direction not in ("buy", "sell"):
        raise BadTrade(f"direction is {str(direction)[:40]!r}, not buy or sell")
    tick = _integer(trade, "tick_direction", required=False)
    if tick is not None and tick > 3:
        raise BadTrade(f"tick_direction is {tick}, not 0-3")
    legs = _integer(trade, "block_trade_leg_count", required=False)
    numbers = [_number(trade, f, required=False) for f in _OPTIONAL_NUMBERS]
    texts = [_text(trade, f, required=False) for f in _OPTIONAL_TEXTS]
    mark, index, iv, contracts = numbers
    liquidation, block_id, combo_id, combo_trade_id = texts
    return (
        ts,
        _text(trade, "trade_id", required=True),
        _integer(trade, "trade_seq", required=True),
        price,
        amount,
        direction,
        tick,
        mark,
        index,
        iv,
        liquidation,
        block_id,
        combo_id,
        contracts,
        legs,
        combo_trade_id,
    )


def _page(reply: object) -> tuple[list, bool]:
    """(trades, has_more) of one reply, checked for shape and size."""
    if not isinstance(reply, dict) or not isinstance(reply.get("trades"), list):
        raise BadTrade("the reply has no list of trades")
    if len(reply["trades"]) > 10 * PAGE:  # bounded memory per reply, whatever the host accepts as count
        raise BadTrade(f"the reply holds {len(reply['trades'])} trades, more than {10 * PAGE}")
    has_more = reply.get("has_more", False)
    if not isinstance(has_more, bool):
        raise BadTrade(f"has_more is {str(has_more)[:40]!r}, not true or false")
    return reply["trades"], has_more


def parse_page(reply: object, instrument: str) -> tuple[list[tuple], bool]:
    """(rows, has_more) of one reply."""
    trades, has_more = _page(reply)
    return [parse_trade(t, instrument) for t in trades], has_more


def parse_any_page(reply: object) -> tuple[list[tuple[str, tuple]], bool]:
    """((instrument, row) of each trade, has_more) of a by-currency reply, whose trades are of many instruments."""
    trades, has_more = _page(reply)
    return [parse_any(t) for t in trades], has_more


def parse_any(trade: object) -> tuple[str, tuple]:
    """(instrument, row) of a trade of a by-currency reply."""
    name = (_text(trade, "instrument_name", required=True) if isinstance(trade, dict) else None) or ""
    return name, parse_trade(trade, name)


async def fetch_trades(client: DeribitClient, instrument: str, start_ms: int, end_ms: int) -> list[tuple]:
    """Every trade of `instrument` with start_ms <= timestamp < end_ms, ordered by trade_seq, each once."""
    last = end_ms - 1  # the endpoints' bounds are inclusive
    reply = await client.call(
        "get_last_trades_by_instrument_and_time",
        {"instrument_name": instrument, "start_timestamp": start_ms, "end_timestamp": last, "count": PAGE,
         "sorting": "asc"},
    )  # fmt: skip
    rows, has_more = parse_page(reply, instrument)
    found: dict[str, tuple] = {}
    top = _keep(found, rows, start_ms, end_ms, instrument)
    while has_more:
        if top is None:
            raise BadTrade("has_more is true but the page holds no trade of the window")
        reply = await client.call(
            "get_last_trades_by_instrument",
            {"instrument_name": instrument, "start_seq": top + 1, "end_timestamp": last, "count": PAGE,
             "sorting": "asc"},
        )  # fmt: skip
        rows, has_more = parse_page(reply, instrument)
        newer = _keep(found, rows, start_ms, end_ms, instrument)
        if has_more and (newer is None or newer <= top):  # a page that moves nothing forward would repeat forever
            raise BadTrade(f"has_more is true but no trade after trade_seq {top} came back")
        top = max(top, newer) if newer is not None else top
    return sorted(found.values(), key=lambda r: (r[2], r[0]))


def _keep(found: dict[str, tuple], rows: list[tuple], start_ms: int, end_ms: int, instrument: str) -> int | None:
    """Add the rows inside the window to `found` (by trade_id); return the highest trade_seq of the page."""
    top = None
    for row in rows:
        top = row[2] if top is None else max(top, row[2])
        if not start_ms <= row[0] < end_ms:
            continue
        seen = found.get(row[1])
        if seen is not None and seen != row:
            raise BadTrade(f"trade {row[1]} of {instrument} came back twice with different contents")
        found[row[1]] = row
    return top


class Trades(RangedDataset):
    """One instrument's trades, a window of `window` at a time (options trade rarely, perpetuals constantly)."""

    name = "trades"
    step_ms = 1  # a trade's time has milliseconds
    # A trade, once made, does not change; but a recent minute may still be revised (a late or busted trade, as the
    # candles are): the newest 15 minutes are fetched again by the next run or collector cycle.
    settle = timedelta(minutes=15)

    def __init__(self, window: timedelta, task_span: timedelta):
        self.window_points = int(window / timedelta(milliseconds=1))
        self.task_span = task_span
        self._spans: OrderedDict[str, int] = OrderedDict()  # per instrument: the next window's length, ms

    def window_end(self, key: str, start_ms: int, end_ms: int) -> int:
        """Windows sized to hold about WINDOW_PAGES pages of the instrument's trades at the rate its last window
        had. Requests are what Deribit limits (20 a second) and each window ends with a part-filled page: at one
        fixed length per kind, an hour of the simulator's perpetual (a few hundred trades) filled a third of one
        page per request, while an option trading a few times a day spends a request per week."""
        return min(start_ms + self._spans.get(key, self.window_ms), end_ms)

    def _learn(self, key: str, span_ms: int, trades: int) -> None:
        """Size the next window of `key` from one just fetched: WINDOW_PAGES pages at its rate, changing by at most
        a factor of WINDOW_GROWTH a window (a quiet hour, an outage, says little about the next day). It grows from
        the longer of this window and the length it had (a task's last window is cut short by the task's end)."""
        wanted = span_ms * WINDOW_PAGES * PAGE // max(trades, 1)
        longest = WINDOW_GROWTH * max(span_ms, self._spans.get(key, self.window_ms))
        span = min(max(wanted, span_ms // WINDOW_GROWTH, MIN_WINDOW_MS), longest)
        self._spans[key] = span
        self._spans.move_to_end(key)
        while len(self._spans) > MAX_LEARNED:
            self._spans.popitem(last=False)

    async def fetch_once(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> list[Sequence]:
        return await fetch_trades(client, key, start_ms, end_ms)

    async def fetch_window(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> Window:
        window = Window(start_ms, end_ms, [], key=key)
        current_tally.set(window.tally)  # this runs in its own asyncio task: the tally is the window's
        try:
            window.rows = await fetch_trades(client, key, start_ms, end_ms)
            self._learn(key, end_ms - start_ms, len(window.rows))
        except BadTrade as exc:
            raise UnexpectedReplyError(
                f"trades of {key} from {from_ms(start_ms):%Y-%m-%d %H:%M}: the exchange's reply is not as documented "
                f"({exc})"
            ) from None
        return window

    async def load(self, conn: AsyncConnection, key_id: int | None, window: Window) -> LoadResult:
        """Store the window's trades not stored yet. A trade never changes once made, so a stored one is left as
        it is: a re-run writes nothing."""
        if not window.rows:
            return LoadResult()
        lo, hi = from_ms(window.start_ms), from_ms(window.end_ms)
        span = {"instrument": window.key, "start": lo, "end": hi}
        cur = await conn.execute(query("trades", "stored_ids"), span)
        stored = {trade_id for (trade_id,) in await cur.fetchall()}
        fresh = [
            (window.key, datetime.fromtimestamp(r[0] / 1000, UTC), *r[1:]) for r in window.rows if r[1] not in stored
        ]
        if not fresh:
            return LoadResult()
        try:
            async with conn.transaction():  # a savepoint: a racing writer (the collector) only costs this attempt
                await copy_rows(conn, TRADES, fresh)
            inserted = len(fresh)
        except psycopg.errors.UniqueViolation:
            inserted = len(await _insert_missing(conn, fresh))
        # gap_report reads the jumps in trade_seq; the daily smile and flow read the option tape's daily sums
        await conn.execute(query("trades", "refresh_seq_gaps"), span)
        if is_option(window.key):
            await conn.execute(query("trades", "refresh_days"), span)
        return LoadResult(inserted=inserted)


async def _insert_missing(conn: AsyncConnection, rows: list[tuple]) -> list[tuple[str, datetime]]:
    """Insert the rows whose key is not stored yet (through a session's staging table); (instrument, ts) of each
    new one."""
    await conn.execute(compose("load", "staging", staging=TRADES.staging, target=TRADES.ident))
    await copy_rows(conn, TRADES, rows, into=TRADES.staging)
    cur = await conn.execute(compose("trades", "insert_missing", staging=TRADES.staging))
    new = await cur.fetchall()
    await conn.execute(compose("load", "truncate", staging=TRADES.staging))
    return new


async def store_new(conn: AsyncConnection, trades: list[tuple[str, tuple]]) -> int:
    """Store the trades (instrument, row) not stored yet, in the caller's transaction, and recompute the jumps in
    trade_seq around them (deribit_ts.trade_seq_gaps, what gap_report reads) and the daily sums of the options that
    got new ones (deribit_ts.trade_days, what the daily smile and flow read); how many were
    new. A stored trade is left as it is (a trade never changes once made): storing a page twice writes nothing."""
    if not trades:
        return 0
    new = await _insert_missing(conn, [(name, datetime.fromtimestamp(r[0] / 1000, UTC), *r[1:]) for name, r in trades])
    spans: dict[str, tuple[datetime, datetime]] = {}
    for name, ts in new:
        lo, hi = spans.get(name, (ts, ts))
        spans[name] = (min(lo, ts), max(hi, ts))
    for name, (lo, hi) in sorted(spans.items()):
        span = {"instrument": name, "start": lo, "end": hi + timedelta(milliseconds=1)}
        await conn.execute(query("trades", "refresh_seq_gaps"), span)
        if is_option(name):
            await conn.execute(query("trades", "refresh_days"), span)
    return len(new)


# The first window of an instrument: options trade a few times a day (a week), futures every few minutes,
# perpetuals many times a second (Deribit: a few hundred thousand a day: an hour is a dozen pages). Later windows
# are sized from the trades seen (Trades.window_end). A perpetual's task is a week: a day of the simulator's
# perpetual is 10 pages, so day-long tasks would cap its windows at a day and keep a part-filled page in ten.
OPTION_TRADES = Trades(window=timedelta(days=7), task_span=timedelta(days=28))
FUTURE_TRADES = Trades(window=timedelta(hours=6), task_span=timedelta(days=7))
PERPETUAL_TRADES = Trades(window=timedelta(hours=1), task_span=timedelta(days=7))
DATASET = FUTURE_TRADES


def for_key(name: str) -> Trades:
    """The trades dataset sized for an instrument's name."""
    if is_option(name):
        return OPTION_TRADES
    return PERPETUAL_TRADES if name.endswith("PERPETUAL") else FUTURE_TRADES


async def plan_of(conn: AsyncConnection, keys: list[str]) -> dict:
    """Instruments with trades planned among `keys`, their open tasks, and the requests those take at least (one
    per window of each instrument's size)."""
    cur = await conn.execute(query("trades", "open_tasks"), {"keys": keys})
    rows = await cur.fetchall()
    requests = sum(-(-int(ms) // for_key(key).window_ms) for key, ms in rows)
    return {"instruments": len({key for key, _ in rows}), "tasks": len(rows), "requests": requests}
