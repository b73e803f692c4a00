"""SimMarket: the simulated exchange's truth, as pure functions of (config, instrument, time, now).

The server only formats what this object answers, and tests compare a database with it row for row.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections import OrderedDict
from datetime import UTC, datetime

import numpy as np

from deribit_ts.sim import outages as _outages
from deribit_ts.sim import seqcache, snapshots
from deribit_ts.sim.blocks import Block, decimals_of, generate_block
from deribit_ts.sim.calendar import Catalogue, Instrument
from deribit_ts.sim.chart import RESOLUTION_MINUTES, aggregate_block
from deribit_ts.sim.clock import Clock
from deribit_ts.sim.config import SimConfig
from deribit_ts.sim.paths import DAY_MS, HOUR_MS, MINUTE_MS, UNDERLYINGS, UnderlyingPaths
from deribit_ts.sim.recent import apply_recent, is_preliminary
from deribit_ts.sim.trades import Trade, day_count, day_trades

CURRENCIES = tuple(UNDERLYINGS)
COLUMNS = ("ticks", "open", "high", "low", "close", "volume", "cost")
_DTYPES = {c: np.int64 if c == "ticks" else np.float64 for c in COLUMNS}


def _joined(pieces: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {c: np.concatenate(p) if p else np.empty(0, dtype=_DTYPES[c]) for c, p in pieces.items()}


class SimMarket:
    """Deterministic market of BTC and ETH derivatives for one SimConfig."""

    def __init__(self, config: SimConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SimConfig()
        self.clock = clock or Clock(self.config.now, self.config.clock_speed)
        self.paths = {c: UnderlyingPaths(self.config.seed, c) for c in CURRENCIES}
        self.catalogue = Catalogue(self.config, self.paths)
        self._outages = _outages.windows(self.config)
        self._blocks: OrderedDict[tuple, Block] = OrderedDict()
        self.stats_memo: OrderedDict[tuple[str, int], dict] = OrderedDict()  # see snapshots._stats
        self.memo_lock = threading.Lock()
        self._lock = threading.Lock()
        self._tapes: OrderedDict[tuple[str, int], list[Trade]] = OrderedDict()
        self._seq_bases: dict[str, list[int]] = {}  # per instrument: first trade_seq of each day since its first
        self._seq_lock = threading.Lock()

    # ---- time ---------------------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def _now(self, now_ms: int | None) -> int:
        return self.clock.now_ms() if now_ms is None else now_ms

    # ---- instruments --------------------------------------------------------------------------------------------
    def instrument(self, name: str, now_ms: int | None = None) -> Instrument | None:
        """The instrument, or None if it does not exist (yet) at `now_ms`."""
        return self.catalogue.get(name, self._now(now_ms))

    def instruments(
        self, currency: str | None = None, kind: str | None = None, expired: bool = False, now_ms: int | None = None
    ) -> list[Instrument]:
        """What get_instruments lists: active ones, or the (recently) expired ones instead."""
        now = self._now(now_ms)
        currencies = CURRENCIES if currency in (None, "any") else (currency,)
        out: list[Instrument] = []
        for cur in currencies:
            out.extend(self.catalogue.listed(cur, now, kind=kind, expired=expired))
        return out

    def outage_windows(self) -> list[tuple[int, int]]:
        """Exchange outages [start_ms, end_ms): no candles, trades, funding rows or index points inside."""
        return list(self._outages) if self.config.pathologies.outages else []

    def in_outage(self, ms: int) -> bool:
        return self.config.pathologies.outages and any(s <= ms < e for s, e in self._outages)

    # ---- candles ------------------------------------------------------------------------------------------------
    def block(self, inst: Instrument, day: int, resolution: str = "1") -> Block:
        """The final (fully aged) candles of one UTC day at a resolution, cached."""
        key = (inst.name, day, resolution)
        with self._lock:
            hit = self._blocks.get(key)
            if hit is not None:
                self._blocks.move_to_end(key)
                return hit
        if resolution == "1":
            made = self._generate(inst, day)
        else:
            made = aggregate_block(self.block(inst, day, "1"), RESOLUTION_MINUTES[resolution], day * DAY_MS)
        with self._lock:
            self._blocks[key] = made
            while len(self._blocks) > self.config.cache_blocks:
                self._blocks.popitem(last=False)
        return made

    def _generate(self, inst: Instrument, day: int) -> Block:
        p = self.config.pathologies
        return generate_block(
            inst, self.paths[inst.currency], day, self.config.seed, self.outage_windows(), p.filler_candles, p.bad_ticks
        )

    def candles(
        self, name: str, start_ms: int, end_ms: int, resolution: str = "1", now_ms: int | None = None
    ) -> dict[str, list]:
        """Candles of the buckets that overlap [start_ms, end_ms] as served at `now_ms`, untruncated.

        Columns: ticks, open, high, low, close, volume, cost. Nothing after `now`; the current bucket is still
        forming; recent minutes may be preliminary (late corrections).
        """
        arrays = self.candle_arrays(name, start_ms, end_ms, resolution, now_ms)
        return {column: values.tolist() for column, values in arrays.items()}

    def candle_arrays(
        self,
        name: str,
        start_ms: int,
        end_ms: int,
        resolution: str = "1",
        now_ms: int | None = None,
        at_least: int | None = None,
        newest: bool = True,
    ) -> dict[str, np.ndarray]:
        """candles() as numpy columns (ticks int64, the others float64): what the server encodes.

        With `at_least`, day blocks are read from the newest (or the oldest if not `newest`) end only until that
        many candles are in hand: a capped chart answer over years then reads a few days, not all of them.
        """
        now = self._now(now_ms)
        inst = self.instrument(name, now)
        pieces: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
        if inst is None:
            return _joined(pieces)
        end_ms = min(end_ms, now, inst.expiry_ms - 1)
        width = RESOLUTION_MINUTES[resolution] * MINUTE_MS
        # The bucket containing start_timestamp counts (see docs/simulator.md): ccxt's since-less fetch_ohlcv
        # asks for now - (limit-1) buckets and expects `limit` candles back.
        start_ms = max(start_ms // width * width, self.config.start_ms)
        if end_ms < start_ms:
            return _joined(pieces)
        first_day, last_day = start_ms // DAY_MS, end_ms // DAY_MS
        recent_from = now - (self.config.pathologies.correction_window_minutes + 2) * MINUTE_MS
        recent_day = min(recent_from, now - RESOLUTION_MINUTES[resolution] * MINUTE_MS) // DAY_MS
        days = range(max(first_day, inst.creation_ms // DAY_MS), last_day + 1)
        found = 0
        for day in reversed(days) if newest and at_least is not None else days:
            if day >= recent_day:
                blk = apply_recent(self, inst, day, resolution, now)
            else:
                blk = self.block(inst, day, resolution)
            ticks = blk.ticks
            a = bisect.bisect_left(ticks, start_ms) if day == first_day else 0
            b = bisect.bisect_right(ticks, end_ms) if day == last_day else len(ticks)
            if a >= b:
                continue
            for column in COLUMNS:  # zero-copy views of the block's columns
                pieces[column].append(np.frombuffer(getattr(blk, column), dtype=_DTYPES[column])[a:b])
            found += b - a
            if at_least is not None and found >= at_least:
                break
        if newest and at_least is not None:
            pieces = {column: parts[::-1] for column, parts in pieces.items()}
        return _joined(pieces)

    def chart(self, name: str, start_ms: int, end_ms: int, resolution: str, now_ms: int | None = None) -> dict:
        """What get_tradingview_chart_data answers: the candles of at most `chart_max_candles` buckets.

        The cap counts buckets, not rows, as measured (docs/deribit.md, Endpoints: a wide window answers the newest
        5,001 buckets, first tick = end - 5000 * resolution, start ignored), so a window whose newest buckets
        are all empty (an outage) answers no_data even when older buckets of it have candles. The buckets are
        counted from min(end, now): the measurement asked for a past end. chart_truncate='new' (a variant
        nobody measured) keeps the oldest `chart_max_candles` rows instead.
        """
        cap = self.config.chart_max_candles
        if self.config.chart_truncate == "old":
            width = RESOLUTION_MINUTES[resolution] * MINUTE_MS
            newest_bucket = min(end_ms, self._now(now_ms)) // width * width
            start_ms = max(start_ms, newest_bucket - (cap - 1) * width)
        return self.truncate(
            self.candle_arrays(
                name, start_ms, end_ms, resolution, now_ms, at_least=cap, newest=self.config.chart_truncate == "old"
            )
        )

    def truncate(self, columns: dict) -> dict:
        """Keep chart_max_candles of a chart answer: the newest ('old' end cut) or the oldest ('new' end cut)."""
        cap = self.config.chart_max_candles
        if len(columns["ticks"]) <= cap:
            return columns
        keep = slice(-cap, None) if self.config.chart_truncate == "old" else slice(0, cap)
        return {k: v[keep] for k, v in columns.items()}

    # ---- index ----------------------------------------------------------------------------------------------------
    def index(self, currency: str, ms: int) -> float | None:
        """Index price at `ms` (None before the start, after now or during an outage)."""
        if ms < self.config.start_ms or ms > self.now_ms() or self.in_outage(ms):
            return None
        return self.paths[currency].index_at(ms)

    def index_series(self, currency: str, start_ms: int, end_ms: int, step_ms: int) -> list[list]:
        """[[ts, price], ...] on a grid of `step_ms` (aligned to the epoch) within [start_ms, end_ms]."""
        now = self.now_ms()
        first = max(start_ms, self.config.start_ms)
        first = -(-first // step_ms) * step_ms
        last = min(end_ms, now)
        paths = self.paths[currency]
        out = []
        for ts in range(first, last + 1, step_ms):
            if self.in_outage(ts):
                continue
            out.append([ts, paths.index_at(ts)])
        return out

    # ---- funding --------------------------------------------------------------------------------------------------
    def _funding_hours(self, name: str, start_ms: int, end_ms: int, now_ms: int | None):
        """(paths, first hour, last hour) of the funding rows in (start_ms, end_ms], or None if there are none."""
        now = self._now(now_ms)
        inst = self.instrument(name, now)
        if inst is None or not inst.is_perpetual:
            return None
        first_hour = max(start_ms + 1, inst.creation_ms + HOUR_MS)
        first_hour = -(-first_hour // HOUR_MS)
        last_hour = min(end_ms, now) // HOUR_MS
        return self.paths[inst.currency], first_hour, last_hour

    def funding(
        self,
        name: str,
        start_ms: int,
        end_ms: int,
        now_ms: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[dict]:
        """Hourly funding rows with timestamp in (start_ms, end_ms] (start exclusive, end inclusive), ascending.

        With `limit`, only the oldest `limit` rows (the newest if `newest`): a capped answer over years of hours
        then costs `limit` rows, not the whole range.
        """
        span = self._funding_hours(name, start_ms, end_ms, now_ms)
        if span is None:
            return []
        paths, first_hour, last_hour = span
        hours = range(last_hour, first_hour - 1, -1) if newest else range(first_hour, last_hour + 1)
        rows = []
        for hour in hours:
            if limit is not None and len(rows) == limit:
                break
            ts = hour * HOUR_MS
            if self.in_outage(ts):
                continue
            rows.append(
                {
                    "timestamp": ts,
                    "index_price": paths.index_at(ts),
                    "prev_index_price": paths.index_at(ts - HOUR_MS),
                    "interest_8h": sum(paths.interest_1h(h) for h in range(hour - 7, hour + 1)),
                    "interest_1h": paths.interest_1h(hour),
                }
            )
        return rows[::-1] if newest else rows

    def funding_value(self, name: str, start_ms: int, end_ms: int, now_ms: int | None = None) -> float:
        """Funding accrued over (start_ms, end_ms]: the sum of the hourly interest_1h in that period.

        Vectorised over the hours (years of them answer in milliseconds), summed left to right like the rows.
        """
        span = self._funding_hours(name, start_ms, end_ms, now_ms)
        if span is None or span[2] < span[1]:
            return 0
        paths, first_hour, last_hour = span
        hours = np.arange(first_hour, last_hour + 1, dtype=np.int64)
        if self.config.pathologies.outages:
            ts = hours * HOUR_MS
            for begin, end in self._outages:
                hours = hours[(ts < begin) | (ts >= end)]
                ts = hours * HOUR_MS
        return sum(paths.interest_1h_many(hours).tolist())

    # ---- prices used by tickers ------------------------------------------------------------------------------------
    def mark_price(self, inst: Instrument, ms: int) -> float:
        paths = self.paths[inst.currency]
        index = paths.index_at(ms)
        if inst.is_perpetual:
            return round(index * (1.0 + paths.premium_at(ms)), 2)
        if inst.is_option:  # as its ticker reports it: from the rounded forward and mark_iv
            return float(snapshots.chain_view(self, [inst], min(ms, inst.expiry_ms)).mark[0])
        return round(self.forward(inst.currency, inst.expiry_ms, ms), 2)

    def mark_price_history(self, inst: Instrument, start_ms: int, end_ms: int, now_ms: int | None = None) -> list:
        """[[ts, mark], ...] every `mark_history_step_seconds` (aligned to the epoch) in [start_ms, end_ms], newest
        first like the example, at most `mark_history_max_rows` (the newest). Options only: Deribit keeps it for
        the options in its volatility index and answers [] for futures and perpetuals."""
        if not inst.is_option:
            return []
        step = self.config.mark_history_step_seconds * 1000
        first = -(-max(start_ms, inst.creation_ms, self.config.start_ms) // step) * step
        last = min(end_ms, self._now(now_ms), inst.expiry_ms - 1) // step * step
        out: list[list] = []
        ts = last
        while ts >= first and len(out) < self.config.mark_history_max_rows:
            if not self.in_outage(ts):
                out.append([ts, self.mark_price(inst, ts)])
            ts -= step
        return out

    def forward(self, currency: str, expiry_ms: int, ms: int) -> float:
        paths = self.paths[currency]
        return paths.index_at(ms) * math.exp(paths.basis_at(ms) * max(expiry_ms - ms, 0) / (365 * DAY_MS))

    def round_price(self, inst: Instrument, price: float) -> float:
        tick = inst.tick
        return round(round(price / tick) * tick, decimals_of(tick))

    # ---- trades ---------------------------------------------------------------------------------------------------
    def _first_day(self, inst: Instrument) -> int:
        return max(inst.creation_ms, self.config.start_ms) // DAY_MS

    def seq_base(self, inst: Instrument, day: int) -> int:
        """trade_seq of the first trade of `day` (1 + every trade of the instrument's earlier days): contiguous per
        instrument. Earlier days are counted once per process from their draws (blocks.traded_lots: no prices)."""
        first = self._first_day(inst)
        if day <= first:
            return 1
        with self._seq_lock:
            bases = self._seq_bases.get(inst.name)
            if bases is None:
                bases = self._seq_bases[inst.name] = list(
                    itertools.accumulate(seqcache.load(self._seq_key(inst)), initial=1)
                )
            if len(bases) <= day - first:
                p = self.config.pathologies
                while len(bases) <= day - first:
                    d = first + len(bases) - 1
                    count = day_count(
                        inst, self.paths[inst.currency], d, self.config.seed, self.outage_windows(), p.bad_ticks
                    )
                    bases.append(bases[-1] + count)
                seqcache.save(self._seq_key(inst), np.diff(bases).tolist())
            return bases[day - first]

    def _seq_key(self, inst: Instrument) -> str:
        """What an instrument's trades per day depend on, besides the simulator's code (seqcache)."""
        p = self.config.pathologies
        return f"{self.config.seed}|{self.config.start_ms}|{self.outage_windows()}|{p.bad_ticks}|{inst!r}"

    def _day_of_seq(self, inst: Instrument, seq: int, last_day: int) -> int:
        """The day holding trade_seq `seq` (clamped to [first day, last_day])."""
        first = self._first_day(inst)
        self.seq_base(inst, last_day)
        bases = self._seq_bases.get(inst.name, [1])
        return min(max(first + bisect.bisect_right(bases, seq) - 1, first), last_day)

    def day_tape(self, inst: Instrument, day: int) -> list[Trade]:
        """Every trade of one UTC day (final, as the candles of that day aggregate them), in time order. Cached."""
        key = (inst.name, day)
        with self._lock:
            hit = self._tapes.get(key)
            if hit is not None:
                self._tapes.move_to_end(key)
                return hit
        blk = self.block(inst, day, "1")
        tape = day_trades(inst, blk, self.config.seed, self.seq_base(inst, day))
        with self._lock:
            self._tapes[key] = tape
            while len(self._tapes) > self.config.cache_tapes:
                self._tapes.popitem(last=False)
        return tape

    def trades(
        self,
        name: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
        ascending: bool = True,
        now_ms: int | None = None,
        start_seq: int | None = None,
        end_seq: int | None = None,
    ) -> list[Trade]:
        """Up to `limit` trades with timestamp in [start_ms, end_ms] and trade_seq in [start_seq, end_seq] (bounds
        inclusive, each optional), oldest first if `ascending` else newest first, exactly as the candles served at
        `now_ms` aggregate them (a preliminary minute lacks its last trade, nothing after now)."""
        now = self._now(now_ms)
        inst = self.instrument(name, now)
        if inst is None:
            return []
        lo = max(start_ms if start_ms is not None else 0, inst.creation_ms, self.config.start_ms)
        hi = min(end_ms if end_ms is not None else now, now, inst.expiry_ms - 1)
        if hi < lo:
            return []
        first_day, last_day = lo // DAY_MS, hi // DAY_MS
        if start_seq is not None:
            first_day = max(first_day, self._day_of_seq(inst, start_seq, last_day))
        if end_seq is not None:
            last_day = min(last_day, self._day_of_seq(inst, end_seq, last_day))
        days = range(first_day, last_day + 1)
        settled = now - (self.config.pathologies.correction_window_minutes + 1) * MINUTE_MS
        out: list[Trade] = []
        for day in days if ascending else reversed(days):
            tape = self.day_tape(inst, day)
            a = bisect.bisect_left(tape, lo, key=lambda t: t.timestamp)
            b = bisect.bisect_right(tape, hi, key=lambda t: t.timestamp)
            found = [
                t
                for t in tape[a:b]
                if (start_seq is None or t.trade_seq >= start_seq) and (end_seq is None or t.trade_seq <= end_seq)
            ]
            if found and found[-1].timestamp > settled:
                found = self._as_served(inst, tape, found, now)
            out.extend(found if ascending else reversed(found))
            if len(out) >= limit:
                break
        return out[:limit]

    def _as_served(self, inst: Instrument, tape: list[Trade], found: list[Trade], now: int) -> list[Trade]:
        """Recent trades as served at `now`: a preliminary minute without its last trade (its candle lacks it)."""
        last_of_minute = {}
        for t in tape:
            last_of_minute[t.timestamp // MINUTE_MS] = t.trade_seq
        out = []
        for t in found:
            minute = t.timestamp // MINUTE_MS
            if (
                t.trade_seq == last_of_minute[minute]
                and (minute + 1) * MINUTE_MS <= now
                and is_preliminary(self, inst, minute * MINUTE_MS, now)
            ):
                continue
            out.append(t)
        return out

    def trades_json(self, inst: Instrument, trades: list[Trade]) -> list[dict]:
        """Trades as the API sends them: mark, index and (options) IV at each trade's instant, from the chain."""
        if not trades:
            return []
        paths = self.paths[inst.currency]
        if inst.is_option:
            marks, ivs = snapshots.option_marks(self, inst, [t.timestamp for t in trades])
        else:
            marks = [self.mark_price(inst, t.timestamp) for t in trades]
            ivs = None
        out = []
        for k, trade in enumerate(trades):
            mark = marks[k]
            direction = "buy" if trade.price >= mark else "sell"
            row = {
                "trade_seq": trade.trade_seq,
                "trade_id": trade.trade_id,
                "timestamp": trade.timestamp,
                "tick_direction": (0 if trade.price != mark else 1) if direction == "buy" else 2,
                "price": trade.price,
                "mark_price": mark,
            }
            if ivs is not None:
                row["iv"] = ivs[k]
            row["instrument_name"] = inst.name
            row["index_price"] = paths.index_at(trade.timestamp)
            row["direction"] = direction
            row["amount"] = trade.amount
            row["contracts"] = round(trade.amount / inst.contract_size, 8)
            if trade.liquidation is not None:
                row["liquidation"] = trade.liquidation
            if trade.block_trade_id is not None:
                row["block_trade_id"] = trade.block_trade_id
                row["block_trade_leg_count"] = 1
            out.append(row)
        return out

    def trade_json(self, inst: Instrument, trade: Trade) -> dict:
        return self.trades_json(inst, [trade])[0]

    # ---- delivery, volatility ---------------------------------------------------------------------------------------
    def delivery_price(self, currency: str, ms: int) -> float:
        """Deribit settles on the index's 30-minute average before the 08:00 UTC expiry."""
        day = ms // DAY_MS
        levels = self.paths[currency].minute_levels(day)
        minute = (ms - day * DAY_MS) // MINUTE_MS
        window = levels[max(0, minute - 30) : minute].tolist() or [float(levels[minute])]
        return round(sum(window) / len(window), 8)

    def delivery_prices(self, currency: str, offset: int, count: int, now_ms: int | None = None) -> dict:
        """Daily 08:00 delivery prices up to now, newest first, skipping the newest `offset` (>= 0) of them."""
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        now = self._now(now_ms)
        first = -(-(self.config.start_ms - 8 * HOUR_MS) // DAY_MS)
        last = (now - 8 * HOUR_MS) // DAY_MS
        total = max(0, last - first + 1)
        data = []
        for day in range(last - offset, max(first, last - offset - count + 1) - 1, -1):
            when = day * DAY_MS + 8 * HOUR_MS
            data.append(
                {
                    "date": datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d"),
                    "delivery_price": self.delivery_price(currency, when),
                }
            )
        return {"data": data, "records_total": total}

    def dvol(self, currency: str, start_ms: int, end_ms: int, seconds: int, now_ms: int | None = None) -> dict:
        """DVOL candles [ts, open, high, low, close] (percent); newest `dvol_max_rows` when more match, with
        `continuation` = the end_timestamp that fetches the next older page."""
        now = self._now(now_ms)
        step = seconds * 1000
        dvol_start = int(max(self.config.start, self.config.dvol_start).timestamp() * 1000)
        first = -(-max(start_ms, dvol_start) // step) * step
        last = min(end_ms, now) // step * step
        if last < first:
            return {"data": [], "continuation": None}
        n = (last - first) // step + 1
        cap = self.config.dvol_max_rows
        continuation = None
        if n > cap:
            first = last - (cap - 1) * step
            continuation = first - 1
        paths = self.paths[currency]
        samples = min(5, max(1, seconds // 60))
        rows = []
        for ts in range(first, last + 1, step):
            values = [round(paths.atm_vol_at(ts + k * step // samples) * 100, 2) for k in range(samples)]
            rows.append([ts, values[0], max(values), min(values), values[-1]])
        return {"data": rows, "continuation": continuation}

    def historical_volatility(self, currency: str, now_ms: int | None = None) -> list[list]:
        """Hourly realised volatility (percent, trailing 24 hourly returns, annualised) for the last 15 days."""
        now = self._now(now_ms)
        paths = self.paths[currency]
        last_hour = now // HOUR_MS
        first_hour = max(last_hour - 15 * 24, self.config.start_ms // HOUR_MS + 25)
        levels = {h: paths.index_at(h * HOUR_MS) for h in range(first_hour - 24, last_hour + 1)}
        out = []
        for h in range(first_hour, last_hour + 1):
            var = sum(math.log(levels[k] / levels[k - 1]) ** 2 for k in range(h - 23, h + 1))
            out.append([h * HOUR_MS, math.sqrt(var * 365) * 100])
        return out
