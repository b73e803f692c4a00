"""Which instruments exist when: perpetuals, dated futures and options on Deribit's expiry calendar.

Expiries are at 08:00 UTC. Fridays carry weekly futures; the last Friday of a month is the monthly; the last Friday
of March/June/September/December is the quarterly. Options expire daily (every day), weekly, monthly and quarterly.
An instrument is listed a fixed number of days (a setting per kind) before its expiry, at 08:00 UTC, with option
strikes laid around the index on the listing day.
"""

from __future__ import annotations

import calendar as _cal
import math
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime

from deribit_ts.sim.config import SimConfig
from deribit_ts.sim.paths import DAY_MS, HOUR_MS, UnderlyingPaths

PERPETUAL_EXPIRY_MS = 32503708800000  # year 3000, as Deribit reports it
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_CURRENCY_CODE = {"BTC": 1, "ETH": 2}
_CONTRACT = {  # currency -> (future tick, perpetual tick, future lot/contract size in USD, option lot)
    "BTC": (2.5, 0.5, 10.0, 0.1),
    "ETH": (0.25, 0.05, 1.0, 1.0),
}
OPTION_TICK = 0.0005
_EPOCH = date(1970, 1, 1)
_INDEX_IDS = {"BTC": 1000033, "ETH": 1000034}
_UUIDS = {
    "BTC": "5b71fc48-3dd3-540c-809b-f8c94d0e68b5",
    "ETH": "d92a3d44-5e3b-5b6c-8a49-4f1f5a1e0c11",
    "USD": "dc311642-e9fb-4ba9-a312-c75c1aef4ae1",
}


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str
    currency: str
    kind: str  # 'future' | 'option'
    period: str  # 'perpetual' | 'day' | 'week' | 'month' (Deribit calls quarterlies 'month' too)
    expiry_kind: str  # 'perpetual' | 'day' | 'week' | 'month' | 'quarter'
    creation_ms: int
    expiry_ms: int
    tick: float
    lot: float  # min_trade_amount; trades are whole multiples of it
    contract_size: float
    instrument_id: int
    strike: float | None = None
    option_type: str | None = None  # 'call' | 'put'
    future_name: str | None = None  # options: the future of the same expiry (may not be listed)

    @property
    def is_perpetual(self) -> bool:
        return self.period == "perpetual"

    @property
    def is_option(self) -> bool:
        return self.kind == "option"

    @property
    def index_name(self) -> str:
        return f"{self.currency.lower()}_usd"

    def alive_at(self, ms: int) -> bool:
        return self.creation_ms <= ms < self.expiry_ms

    def to_api(self, now_ms: int) -> dict:
        """The get_instruments object, keys in the order the real API sends them."""
        active = self.alive_at(now_ms)
        out: dict = {
            "tick_size": self.tick,
            "tick_size_steps": [],
            "taker_commission": 0.0003 if self.is_option else 0.0005,
        }
        if self.is_option:
            out["strike"] = self.strike
        out["settlement_period"] = self.period
        out["settlement_currency"] = self.currency
        out["quote_currency"] = self.currency if self.is_option else "USD"
        out["price_index"] = self.index_name
        if self.is_option:
            out["option_type"] = self.option_type
        out["min_trade_amount"] = self.lot
        if not self.is_option:
            out["max_liquidation_commission"] = 0.0075
            out["max_leverage"] = 50 if self.is_perpetual else 25
        out["maker_commission"] = 0.0003 if self.is_option else 0.0
        out["kind"] = self.kind
        out["is_active"] = active
        out["instrument_name"] = self.name
        out["instrument_id"] = self.instrument_id
        out["instrument_type"] = "reversed"
        out["future_type"] = "reversed"
        out["expiration_timestamp"] = self.expiry_ms
        out["creation_timestamp"] = self.creation_ms
        out["counter_currency"] = "USD"
        out["contract_size"] = self.contract_size
        out["block_trade_tick_size"] = 0.0001 if self.is_option else 0.01
        out["block_trade_min_trade_amount"] = 25 if self.is_option else 200000
        out["block_trade_commission"] = 0.00015 if self.is_option else 0.00025
        out["base_currency"] = self.currency
        out["state"] = "open" if active else "closed"
        # Fields real 2026 payloads carry although the spec does not list them.
        out["product_group"] = self.currency
        out["underlying_type"] = "crypto"
        out["lot_size"] = 1
        out["index_id"] = _INDEX_IDS[self.currency]
        out["base_currency_uuid"] = _UUIDS[self.currency]
        out["quote_currency_uuid"] = _UUIDS[self.currency if self.is_option else "USD"]
        if not self.is_option:
            out["max_non_default_leverage"] = 5.0
        return out


def expiry_label(day: int) -> str:
    """'5APR24' for the day (days since epoch): no leading zero, like Deribit."""
    d = datetime.fromtimestamp(day * 86400, UTC)
    return f"{d.day}{_MONTHS[d.month - 1]}{d.year % 100:02d}"


def expiry_kind(day: int) -> str:
    """'quarter' | 'month' | 'week' | 'day' for an expiry on this day."""
    d = datetime.fromtimestamp(day * 86400, UTC)
    if d.weekday() != 4:
        return "day"
    last_day = _cal.monthrange(d.year, d.month)[1]
    if d.day + 7 <= last_day:
        return "week"
    return "quarter" if d.month % 3 == 0 else "month"


def _nice_step(raw: float) -> float:
    """Round a strike spacing to 1, 2, 2.5 or 5 times a power of ten."""
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * power:
            return m * power
    return 10.0 * power


# Strikes at listing cover calls of delta 0.9 down to 0.1 (|d1| <= 1.2816), with a little margin: Deribit lists a
# fine grid near the money and a coarser one in the wings.
_DELTA_Z = 1.3
_NEAR_SD = 0.5  # the fine grid covers the forward +- half a standard deviation
_NEAR_STRIKES = 23  # strikes in the fine band at density 1 (a real-sized chain: ~800 options per currency)
_MAX_STRIKES = 240  # instrument ids leave room for 500 options per expiry


def delta_strikes(forward: float, years: float, vol: float, density: float = 1.0) -> list[float]:
    """Strikes of one expiry at listing: multiples of a fine step within half a standard deviation of the
    forward, of twice that step out to delta 0.1 / 0.9; `density` scales how many (0.25 = a quarter)."""
    sd = max(vol * math.sqrt(years), 0.01)
    centre = forward * math.exp(0.5 * sd * sd)  # the strike where d1 = 0 (call delta 0.5)
    fine = _nice_step(forward * 2 * _NEAR_SD * sd / max(_NEAR_STRIKES * density, 1.0))
    coarse = 2 * fine
    near_lo, near_hi = centre * math.exp(-_NEAR_SD * sd), centre * math.exp(_NEAR_SD * sd)
    wide_lo, wide_hi = centre * math.exp(-_DELTA_Z * sd), centre * math.exp(_DELTA_Z * sd)
    strikes = {k * fine for k in range(math.ceil(near_lo / fine), math.floor(near_hi / fine) + 1)}
    # the coarse grid reaches the first strike at or beyond each end, so delta 0.9 and 0.1 are always covered
    strikes |= {k * coarse for k in range(max(1, math.floor(wide_lo / coarse)), math.ceil(wide_hi / coarse) + 1)}
    if not strikes:  # a tiny density: at least the strike nearest the money
        strikes = {max(fine, round(centre / fine) * fine)}
    ordered = sorted(round(k, 10) for k in strikes if k > 0)
    if len(ordered) > _MAX_STRIKES:  # keep those nearest the money
        ordered = sorted(sorted(ordered, key=lambda k: abs(math.log(k / centre)))[:_MAX_STRIKES])
    return ordered


def format_strike(strike: float) -> str:
    return str(int(strike)) if strike == int(strike) else f"{strike:g}".replace(".", "d")


class Catalogue:
    """All instruments of the simulated exchange, filtered by the clock.

    Instruments are built lazily, one (currency, expiry day) at a time: a name tells its expiry day, and listings
    only look at the expiry days that can matter. Building all ~90,000 options since 2018 up front took a second.
    """

    def __init__(self, config: SimConfig, paths: dict[str, UnderlyingPaths]) -> None:
        self.config = config
        self.paths = paths
        self._lock = threading.Lock()
        self._perpetuals = {c: self._perpetual(c) for c in paths}
        self._futures: dict[tuple[str, int], list[Instrument]] = {}  # (currency, expiry day) -> 0 or 1 future
        self._options: dict[tuple[str, int], list[Instrument]] = {}
        self._by_name: dict[str, Instrument] = {p.name: p for p in self._perpetuals.values()}
        self._start_day = config.start_ms // DAY_MS
        self._max_lead = max(*config.future_listing_days.values(), *config.option_listing_days.values()) + 1

    def _horizon(self, now_ms: int) -> int:
        """The last expiry day whose instruments may be listed by `now_ms`."""
        return now_ms // DAY_MS + self._max_lead

    def _day(self, table: dict, build, currency: str, day: int) -> list[Instrument]:
        key = (currency, day)
        hit = table.get(key)
        if hit is not None:
            return hit
        with self._lock:
            hit = table.get(key)
            if hit is None:
                hit = build(currency, day) if day > self._start_day else []
                for instrument in hit:
                    self._by_name[instrument.name] = instrument
                table[key] = hit
        return hit

    def futures_on(self, currency: str, day: int) -> list[Instrument]:
        return self._day(self._futures, self._build_futures, currency, day)

    def options_on(self, currency: str, day: int) -> list[Instrument]:
        return self._day(self._options, self._build_options, currency, day)

    def _perpetual(self, currency: str) -> Instrument:
        fut_tick, perp_tick, size, _ = _CONTRACT[currency]
        return Instrument(
            f"{currency}-PERPETUAL",
            currency,
            "future",
            "perpetual",
            "perpetual",
            self.config.start_ms,
            PERPETUAL_EXPIRY_MS,
            perp_tick,
            size,
            size,
            _CURRENCY_CODE[currency] * 100_000_000,
        )

    def _build_futures(self, currency: str, day: int) -> list[Instrument]:
        kind = expiry_kind(day)
        if kind not in self.config.future_listing_days:
            return []
        expiry_ms = day * DAY_MS + 8 * HOUR_MS
        fut_tick, _, size, _ = _CONTRACT[currency]
        created = max(self.config.start_ms, expiry_ms - self.config.future_listing_days[kind] * DAY_MS)
        if created >= expiry_ms:
            return []
        return [
            Instrument(
                f"{currency}-{expiry_label(day)}",
                currency,
                "future",
                "month" if kind == "quarter" else kind,
                kind,
                created,
                expiry_ms,
                fut_tick,
                size,
                size,
                _CURRENCY_CODE[currency] * 100_000_000 + day * 1000,
            )
        ]

    def _build_options(self, currency: str, day: int) -> list[Instrument]:
        kind = expiry_kind(day)
        if kind not in self.config.option_expiries or kind not in self.config.option_listing_days:
            return []
        expiry_ms = day * DAY_MS + 8 * HOUR_MS
        created = max(self.config.start_ms, expiry_ms - self.config.option_listing_days[kind] * DAY_MS)
        if created >= expiry_ms:
            return []
        label = f"{currency}-{expiry_label(day)}"
        option_lot = _CONTRACT[currency][3]
        base_id = _CURRENCY_CODE[currency] * 100_000_000 + day * 1000
        period = {"quarter": "month"}.get(kind, kind)
        out: list[Instrument] = []
        for i, strike in enumerate(self._strikes(currency, created, expiry_ms)):
            for j, (letter, option_type) in enumerate((("C", "call"), ("P", "put"))):
                out.append(
                    Instrument(
                        f"{label}-{format_strike(strike)}-{letter}",
                        currency,
                        "option",
                        period,
                        kind,
                        created,
                        expiry_ms,
                        OPTION_TICK,
                        option_lot,
                        1.0,
                        base_id + 1 + 2 * i + j,
                        strike,
                        option_type,
                        label,
                    )
                )
        return out

    def _strikes(self, currency: str, created_ms: int, expiry_ms: int) -> list[float]:
        spot = self.paths[currency].day_open(created_ms // DAY_MS)
        years = (expiry_ms - created_ms) / (365.0 * DAY_MS)
        if self.config.strikes_per_expiry is not None:  # a fixed grid of n strikes (small test chains)
            n = self.config.strikes_per_expiry
            step = _nice_step(max(spot * 0.8 * math.sqrt(years) * 2.5 / max(n, 1), spot * 0.001))
            atm = round(spot / step) * step
            lowest = max(step, atm - step * (n // 2 - 1))  # keep every strike positive, shifting the grid up
            return [lowest + step * k for k in range(n)]
        return delta_strikes(
            spot, years, self.paths[currency].atm_vol_at(created_ms), self.config.option_strike_density
        )

    def _on_day(self, currency: str, day: int, kind: str | None) -> list[Instrument]:
        """Instruments expiring on `day`, the future first (the order get_instruments lists them in)."""
        futures = self.futures_on(currency, day) if kind in (None, "future") else []
        options = self.options_on(currency, day) if kind in (None, "option") else []
        return futures + options if futures and options else futures or options

    # ---- queries --------------------------------------------------------------------------------------------
    def get(self, name: str, now_ms: int) -> Instrument | None:
        """The instrument if it has been listed by `now_ms` (expired ones included)."""
        instrument = self.named(name)
        if instrument is None or instrument.creation_ms > now_ms:
            return None
        return instrument

    def named(self, name: str) -> Instrument | None:
        """The instrument with this name, whatever the clock."""
        hit = self._by_name.get(name)
        if hit is None:
            parsed = parse_name(name)
            if parsed is None or parsed[0] not in self.paths:
                return None
            currency, day, is_option = parsed
            (self.options_on if is_option else self.futures_on)(currency, day)
            hit = self._by_name.get(name)
        return hit

    def listed(self, currency: str, now_ms: int, *, kind: str | None = None, expired: bool = False) -> list[Instrument]:
        """Active instruments, or (expired=True) the expired ones get_instruments shows instead."""
        if currency not in self.paths:
            return []
        option_cutoff = now_ms - self.config.expired_options_days * DAY_MS
        now_day = now_ms // DAY_MS
        out = []
        if not expired and kind in (None, "future"):
            out.append(self._perpetuals[currency])
        if expired:  # every expired future since the start; options only recently expired
            days = range(self._start_day + 1, now_day + 1)
            option_days = range(option_cutoff // DAY_MS, now_day + 1)
        else:
            days = option_days = range(max(self._start_day + 1, now_day - 1), self._horizon(now_ms) + 1)
        for day in days:
            day_kind = kind if day in option_days else "future"
            if kind == "option" and day_kind == "future":
                continue
            for inst in self._on_day(currency, day, day_kind):
                if inst.creation_ms > now_ms:
                    continue
                if expired:
                    if inst.expiry_ms > now_ms or (inst.is_option and inst.expiry_ms < option_cutoff):
                        continue
                elif inst.expiry_ms <= now_ms:
                    continue
                out.append(inst)
        return out

    def alive(self, currency: str, ms: int) -> list[Instrument]:
        """Instruments trading at instant `ms`."""
        out = [self._perpetuals[currency]] if self._perpetuals[currency].alive_at(ms) else []
        for day in range(max(self._start_day + 1, ms // DAY_MS - 1), self._horizon(ms) + 1):
            out.extend(i for i in self._on_day(currency, day, None) if i.alive_at(ms))
        return out

    def future_named(self, name: str) -> Instrument | None:
        return self.named(name)


_LABEL = re.compile(r"(\d{1,2})([A-Z]{3})(\d{2})")


def parse_name(name: str) -> tuple[str, int, bool] | None:
    """(currency, expiry day, is_option) of a dated instrument name like BTC-29MAR24 or BTC-29MAR24-60000-C."""
    parts = name.split("-")
    if len(parts) not in (2, 4):
        return None
    match = _LABEL.fullmatch(parts[1])
    if match is None or match.group(2) not in _MONTHS:
        return None
    try:
        expiry = date(2000 + int(match.group(3)), _MONTHS.index(match.group(2)) + 1, int(match.group(1)))
    except ValueError:
        return None
    return parts[0], (expiry - _EPOCH).days, len(parts) == 4
