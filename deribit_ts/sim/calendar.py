"""Which instruments exist when: perpetuals, dated futures and options on Deribit's expiry calendar.

Expiries are at 08:00 UTC. Fridays carry weekly futures; the last Friday of a month is the monthly; the last Friday
of March/June/September/December is the quarterly. Options expire daily (every day), weekly, monthly and quarterly.
An instrument is listed a fixed number of days (a setting per kind) before its expiry, at 08:00 UTC, with option
strikes laid around the index on the listing day.
"""

from __future__ import annotations

import calendar as _cal
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

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
_INDEX_IDS = {"BTC": 1000033, "ETH": 1000034}
_UUIDS = {"BTC": "5b71fc48-3dd3-540c-809b-f8c94d0e68b5", "ETH": "d92a3d44-5e3b-5b6c-8a49-4f1f5a1e0c11",
          "USD": "dc311642-e9fb-4ba9-a312-c75c1aef4ae1"}


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
        out: dict = {"tick_size": self.tick, "tick_size_steps": [],
                     "taker_commission": 0.0003 if self.is_option else 0.0005}
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


def format_strike(strike: float) -> str:
    return str(int(strike)) if strike == int(strike) else f"{strike:g}".replace(".", "d")


class Catalogue:
    """All instruments of the simulated exchange, built up to a horizon and filtered by the clock."""

    def __init__(self, config: SimConfig, paths: dict[str, UnderlyingPaths]) -> None:
        self.config = config
        self.paths = paths
        self._lock = threading.Lock()
        self._built_to_day = -1
        self._by_currency: dict[str, list[Instrument]] = {c: [] for c in paths}
        self._by_name: dict[str, Instrument] = {}
        self._start_day = config.start_ms // DAY_MS

    def _max_lead(self) -> int:
        leads = list(self.config.future_listing_days.values()) + list(self.config.option_listing_days.values())
        return max(leads) + 1

    def ensure(self, now_ms: int) -> None:
        """Build every instrument listed up to `now_ms` (expiries up to now + the longest listing lead)."""
        horizon = now_ms // DAY_MS + self._max_lead()
        if horizon <= self._built_to_day:
            return
        with self._lock:
            if horizon <= self._built_to_day:
                return
            first = max(self._built_to_day + 1, self._start_day + 1)
            if self._built_to_day < 0:
                for currency in self.paths:
                    self._add(self._perpetual(currency))
            for day in range(first, horizon + 1):
                for currency in self.paths:
                    for instrument in self._expiring_on(currency, day):
                        self._add(instrument)
            self._built_to_day = horizon

    def _add(self, instrument: Instrument) -> None:
        self._by_currency[instrument.currency].append(instrument)
        self._by_name[instrument.name] = instrument

    def _perpetual(self, currency: str) -> Instrument:
        fut_tick, perp_tick, size, _ = _CONTRACT[currency]
        return Instrument(f"{currency}-PERPETUAL", currency, "future", "perpetual", "perpetual",
                          self.config.start_ms, PERPETUAL_EXPIRY_MS, perp_tick, size, size,
                          _CURRENCY_CODE[currency] * 100_000_000)

    def _expiring_on(self, currency: str, day: int) -> list[Instrument]:
        kind = expiry_kind(day)
        expiry_ms = day * DAY_MS + 8 * HOUR_MS
        label = f"{currency}-{expiry_label(day)}"
        fut_tick, _, size, option_lot = _CONTRACT[currency]
        base_id = _CURRENCY_CODE[currency] * 100_000_000 + day * 1000
        out: list[Instrument] = []
        if kind in self.config.future_listing_days:
            created = max(self.config.start_ms, expiry_ms - self.config.future_listing_days[kind] * DAY_MS)
            if created < expiry_ms:
                out.append(Instrument(label, currency, "future", "month" if kind == "quarter" else kind, kind,
                                      created, expiry_ms, fut_tick, size, size, base_id))
        if kind in self.config.option_expiries and kind in self.config.option_listing_days:
            listed = expiry_ms - self.config.option_listing_days[kind] * DAY_MS
            created = max(self.config.start_ms, listed)
            if created < expiry_ms:
                period = {"quarter": "month"}.get(kind, kind)
                for i, strike in enumerate(self._strikes(currency, created, expiry_ms)):
                    for j, (letter, option_type) in enumerate((("C", "call"), ("P", "put"))):
                        out.append(Instrument(f"{label}-{format_strike(strike)}-{letter}", currency, "option",
                                              period, kind, created, expiry_ms, OPTION_TICK, option_lot, 1.0,
                                              base_id + 1 + 2 * i + j, strike, option_type, label))
        return out

    def _strikes(self, currency: str, created_ms: int, expiry_ms: int) -> list[float]:
        spot = self.paths[currency].day_open(created_ms // DAY_MS)
        years = (expiry_ms - created_ms) / (365.0 * DAY_MS)
        n = self.config.strikes_per_expiry
        step = _nice_step(max(spot * 0.8 * math.sqrt(years) * 2.5 / max(n, 1), spot * 0.001))
        atm = round(spot / step) * step
        lowest = max(step, atm - step * (n // 2 - 1))  # keep every strike positive, shifting the grid up
        return [lowest + step * k for k in range(n)]

    # ---- queries --------------------------------------------------------------------------------------------
    def get(self, name: str, now_ms: int) -> Instrument | None:
        """The instrument if it has been listed by `now_ms` (expired ones included)."""
        self.ensure(now_ms)
        instrument = self._by_name.get(name)
        if instrument is None or instrument.creation_ms > now_ms:
            return None
        return instrument

    def listed(self, currency: str, now_ms: int, *, kind: str | None = None, expired: bool = False) -> list[Instrument]:
        """Active instruments, or (expired=True) the expired ones get_instruments shows instead."""
        self.ensure(now_ms)
        option_cutoff = now_ms - self.config.expired_options_days * DAY_MS
        out = []
        for inst in self._by_currency.get(currency, ()):
            if kind is not None and inst.kind != kind:
                continue
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
        self.ensure(ms)
        return [i for i in self._by_currency.get(currency, ()) if i.alive_at(ms)]

    def future_named(self, name: str) -> Instrument | None:
        return self._by_name.get(name)
