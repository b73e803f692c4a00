"""Every setting of the simulator in one dataclass, so a test, the CLI and a benchmark describe a run the same way."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from deribit_ts.errors import UserError

FAULT_KINDS = ("http_502", "retry_10040", "maintenance_11051", "stall", "drop", "truncate")

# The simulated market is modelled for these years: before, timestamps turn negative; after, its random walks
# leave any meaningful range (and near year 9999 every date computation overflows).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
LATEST_MS = int(LATEST.timestamp() * 1000)
# A simulated day per 86 ms of real time at most: faster clocks only reach the end of the modelled years
# at once (and 1e308 overflows at the first request).
MAX_CLOCK_SPEED = 1_000_000.0
# Clients give up long before this; a larger delay only keeps requests hanging at shutdown.
MAX_LATENCY_MS = 600_000.0


@dataclass(frozen=True)
class Pathologies:
    """The real data's blemishes; each can be switched off to get a clean market."""

    filler_candles: bool = True  # minutes without trades still get a candle (o=h=l=c=prev close, volume 0)
    outages: bool = True  # a few exchange-wide windows with no data at all
    bad_ticks: bool = True  # rare spike trades far from the fair price
    late_corrections: bool = True  # a recent candle is revised once it ages past `correction_window_minutes`
    correction_window_minutes: int = 10
    correction_probability: float = 0.05  # share of minutes inside the window that are served preliminary

    @classmethod
    def from_names(cls, text: str) -> Pathologies:
        """Only the named pathologies on: 'filler-candles,outages' ('_' or '-'; 'fillers' and 'corrections' are
        accepted short forms), 'all' or 'none'."""
        words = [w.strip().lower().replace("_", "-") for w in text.split(",") if w.strip()]
        if words == ["all"]:
            return cls()
        if words == ["none"]:
            return cls(False, False, False, False)
        chosen = set()
        for word in words:
            field_name = PATHOLOGY_NAMES.get(word)
            if field_name is None:
                raise UserError(
                    f"unknown pathology {word!r}; choose from {', '.join(PATHOLOGY_CHOICES)}, or all / none"
                )
            chosen.add(field_name)
        if not chosen:
            raise UserError(f"name at least one pathology ({', '.join(PATHOLOGY_CHOICES)}), or all / none")
        return cls(**{name: name in chosen for name in _SWITCHES})


_SWITCHES = ("filler_candles", "outages", "bad_ticks", "late_corrections")
PATHOLOGY_CHOICES = tuple(name.replace("_", "-") for name in _SWITCHES)
PATHOLOGY_NAMES = {
    **{c: c.replace("-", "_") for c in PATHOLOGY_CHOICES},
    "fillers": "filler_candles",
    "corrections": "late_corrections",
}


@dataclass(frozen=True)
class SimConfig:
    """Settings of one simulated exchange. Same config (with a fixed `now`) => same bytes for the same request."""

    seed: int = 42
    start: datetime = datetime(2018, 8, 14, tzinfo=UTC)  # BTC-PERPETUAL's listing day; nothing exists before it
    now: datetime | None = None  # None = wall-clock time; a datetime = the simulated "now" at server start
    clock_speed: float = 0.0  # with a fixed `now`: 0 = frozen, X > 0 = advances X times faster than real time
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    latency_ms: float = 0.0  # added before every answer
    rate_limit: str = "deribit"  # 'deribit' = credit buckets per client address, 'off' = unlimited
    rate_limit_scale: float = 1.0  # pools and refill times this (with DERIBIT_TS_RATE_LIMIT_SCALE on the client)
    fault_rate: float = 0.0  # share of API requests answered with a fault (deterministic sequence by seed)
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    stall_seconds: float = 2.0  # how long a 'stall' fault sleeps before answering normally
    chart_max_candles: int = 5001  # get_tradingview_chart_data answers at most this many candles (measured)...
    chart_truncate: str = "old"  # ...cutting the 'old' end (real, end-anchored) or the 'new' end
    funding_max_rows: int = 744  # get_funding_rate_history rows per call (31 days of hours)...
    funding_truncate: str = "new"  # ...keeping the oldest rows so a forward walk continues at the last row
    trades_max_count: int = 1000  # `count` above this is a -32602 error, like the real API
    dvol_max_rows: int = 1000  # get_volatility_index_data rows per call before `continuation` is set
    # DVOL exists from its launch in March 2021 (docs/deribit.md; the day is an assumption), not from `start`
    dvol_start: datetime = datetime(2021, 3, 24, tzinfo=UTC)
    mark_history_step_seconds: int = 300  # get_mark_price_history: Deribit documents 5-minute data...
    mark_history_max_rows: int = 1000  # ...and this many (the newest) per answer (a cap Deribit does not document)
    index_chart_resolution: dict[str, int] = field(
        default_factory=lambda: {"1h": 60, "1d": 60, "2d": 60, "1m": 3600, "1y": 86400, "all": 86400}
    )  # seconds between points of get_index_chart_data per `range`
    # Options (docs/deribit.md): strikes from call delta 0.9 to 0.1 at listing, a fine grid near the money and
    # a coarser one in the wings, each strike as a call and a put: ~700-900 live options per currency. A density
    # below 1 thins the grid (0.25: about a quarter of the options, for fast tests); `strikes_per_expiry` instead
    # gives every expiry that many strikes on an even grid.
    option_strike_density: float = 1.0
    strikes_per_expiry: int | None = None
    option_expiries: tuple[str, ...] = ("day", "week", "month", "quarter")
    option_listing_days: dict[str, int] = field(
        default_factory=lambda: {"day": 3, "week": 21, "month": 92, "quarter": 365}
    )  # options are listed this many days before their expiry: 1-3 dailies, 1-3 weeklies (Fridays), 1-3
    # monthlies (last Fridays), the quarterlies up to a year out
    future_listing_days: dict[str, int] = field(
        default_factory=lambda: {"week": 14, "month": 56, "quarter": 273}
    )  # dated futures are listed this many days before their expiry
    expired_options_days: int = 30  # get_instruments(expired=true) lists options expired within this many days
    outage_count: int = 4  # exchange outages between `start` and 2030
    cache_blocks: int = 2048  # day blocks (1440 minutes of one instrument) kept in memory
    cache_tapes: int = 256  # day tapes (one instrument's trades of a day) kept in memory
    pathologies: Pathologies = field(default_factory=Pathologies)

    def __post_init__(self) -> None:
        if self.rate_limit not in ("deribit", "off"):
            raise UserError(f"rate limit must be 'deribit' or 'off', not {self.rate_limit!r}")
        if self.chart_truncate not in ("old", "new") or self.funding_truncate not in ("old", "new"):
            raise UserError("chart_truncate and funding_truncate must be 'old' or 'new'")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise UserError(f"fault rate must be between 0 and 1, not {self.fault_rate}")
        if not 0 < self.rate_limit_scale <= 1000:
            raise UserError(f"rate limit scale must be in (0, 1000], not {self.rate_limit_scale}")
        if not 0 <= self.clock_speed <= MAX_CLOCK_SPEED:
            raise UserError(
                f"clock speed must be between 0 and {MAX_CLOCK_SPEED:,.0f} (times real time), not {self.clock_speed:g}"
            )
        if self.clock_speed and self.now is None:
            raise UserError(
                "a faster clock needs a fixed start: give --now DATE with --clock-speed "
                "(with --now real the simulator follows the wall clock)"
            )
        if not 0 <= self.port <= 65535:
            raise UserError(f"port must be between 0 and 65535, not {self.port}")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise UserError(
                f"latency must be between 0 and {MAX_LATENCY_MS:,.0f} ms (10 minutes), not {self.latency_ms:g}"
            )
        if not 0 <= self.stall_seconds <= MAX_LATENCY_MS / 1000:
            raise UserError(f"stall_seconds must be between 0 and {MAX_LATENCY_MS / 1000:,.0f}")
        for name in (
            "chart_max_candles",
            "funding_max_rows",
            "trades_max_count",
            "dvol_max_rows",
            "cache_blocks",
            "mark_history_step_seconds",
            "mark_history_max_rows",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0 < self.option_strike_density <= 10 or (
            self.strikes_per_expiry is not None and not 1 <= self.strikes_per_expiry <= 240
        ):
            raise UserError("option_strike_density must be in (0, 10] and strikes_per_expiry in 1..240")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise UserError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(FAULT_KINDS)}")
        for name in ("start", "now", "dvol_start"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        self._check_times()

    def _check_times(self) -> None:
        """A market whose history starts before its 'now', inside the years the model covers."""
        for name in ("start", "now"):
            value = getattr(self, name)
            if value is not None and not EARLIEST <= value < LATEST:
                raise UserError(
                    f"--{name} {value:%Y-%m-%d} is outside the simulated years: give a date from "
                    f"{EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}"
                )
        now = self.now or datetime.now(UTC)
        if self.start >= now:
            said = f"--now {now:%Y-%m-%d %H:%M}" if self.now else f"now ({now:%Y-%m-%d}, --now real)"
            raise UserError(
                f"--start {self.start:%Y-%m-%d %H:%M} is not before {said}: the market's history "
                "must begin before its present; give an earlier --start or a later --now"
            )

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    def with_(self, **changes) -> SimConfig:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def public_dict(self) -> dict:
        """The settings as JSON-friendly values (for /_sim/config and logs)."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Pathologies):
                value = dict(value.__dict__)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out
