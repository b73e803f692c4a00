"""The one protocol every dataset follows, in its two shapes.

A task covers [range_start, range_end) of one key. A ranged dataset (candles, funding, DVOL, trades) is worked
through in windows of at most one request's span; each window's rows, its coverage record and the task's cursor
are committed in one transaction, so a killed worker resumes at the first window it had not committed, and never
writes a row twice. A dataset whose API pages by something other than time (the index's ranges that end now, the
delivery prices' offsets) is fetched whole and written in one transaction with its coverage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from psycopg import AsyncConnection

from deribit_ts.exchange.client import DeribitClient, Tally, current_tally
from deribit_ts.exchange.errors import UnexpectedReplyError
from deribit_ts.ingest.load import LoadResult
from deribit_ts.ingest.windows import Reach, fetch_exact
from deribit_ts.timeutil import from_ms, to_ms


@dataclass
class Window:
    start_ms: int
    end_ms: int
    rows: list[Sequence]
    tally: Tally = field(default_factory=Tally)  # HTTP requests and retries it took
    key: str = ""  # the task's key (instrument, currency) the rows belong to


class Dataset(ABC):
    """What the engine and the planners ask of every dataset."""

    name: str
    task_span: timedelta  # size of one task of the plan
    settle: timedelta = timedelta(0)  # how long the exchange may still revise its newest points
    keyed_by_instrument: bool = True  # keys are instrument names (load gets their id); else the key itself


class WholeDataset(Dataset):
    """A dataset fetched whole per task: its API pages by something other than time."""

    keyed_by_instrument = False

    @abstractmethod
    async def fetch(
        self, client: DeribitClient, key: str, start: datetime, end: datetime, now: datetime
    ) -> list[tuple]:
        """Every row of `key` with start <= its time < end (`now`: the exchange's clock)."""

    @abstractmethod
    async def load(self, conn: AsyncConnection, rows: list[tuple]) -> LoadResult:
        """Write the task's rows (inside the caller's transaction)."""


class RangedDataset(Dataset):
    """A dataset fetched by time range, one key (instrument) at a time."""

    step_ms: int  # spacing of the series' points
    window_points: int  # points per request: the most one request is trusted to return
    # An empty answer proves a window empty only up to what answers are known to span (windows.Reach); this is
    # the floor before any answer has shown more. None: the endpoint's cap counts rows, empty is always proof.
    empty_proof_floor: int | None = None

    @cached_property
    def reach(self) -> Reach | None:
        """What this dataset's answers are known to span, shared by the tasks of this process."""
        return None if self.empty_proof_floor is None else Reach(self.empty_proof_floor)

    @property
    def window_ms(self) -> int:
        return self.step_ms * self.window_points

    @abstractmethod
    async def fetch_once(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> list[Sequence]:
        """One request for [start_ms, end_ms): rows whose first element is the timestamp in ms."""

    @abstractmethod
    async def load(self, conn: AsyncConnection, key_id: int, window: Window) -> LoadResult:
        """Write one window's rows (inside the caller's transaction)."""

    def windows(self, start, end) -> list[tuple[int, int]]:
        start_ms, end_ms = to_ms(start), to_ms(end)
        return [(a, min(a + self.window_ms, end_ms)) for a in range(start_ms, end_ms, self.window_ms)]

    def window_end(self, key: str, start_ms: int, end_ms: int) -> int:
        """Where the window of `key` that starts at start_ms ends, inside a task ending at end_ms. Fixed-size here;
        a dataset whose rows per time vary by orders of magnitude (trades) sizes it from what it has seen."""
        return min(start_ms + self.window_ms, end_ms)

    async def fetch_window(self, client: DeribitClient, key: str, start_ms: int, end_ms: int) -> Window:
        window = Window(start_ms, end_ms, [], key=key)
        current_tally.set(window.tally)  # this runs in its own asyncio task: the tally is the window's

        async def once(a: int, b: int) -> list[Sequence]:
            return await self.fetch_once(client, key, a, b)

        try:
            window.rows = await fetch_exact(once, start_ms, end_ms, self.step_ms, self.reach)
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a reply not shaped as documented
            raise UnexpectedReplyError(
                f"{self.name} of {key} from {from_ms(start_ms):%Y-%m-%d %H:%M}: the exchange's reply is not as "
                f"documented ({exc.__class__.__name__}: {exc})"
            ) from None
        return window
