"""Pytest fixtures that run the Deribit simulator in-process. Import them into a test module:

    from sim_fixtures import sim, sim_url, SIM_NOW  # noqa: F401  (pytest finds fixtures by name)

(or add `pytest_plugins = ["sim_fixtures"]` to conftest.py and import nothing).

`sim` yields a SimHandle (.url, .stats(), .reset(), .set_now(), .market, .config) for a market frozen at SIM_NOW
with rate limiting off; `make_sim` builds one with any settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from deribit_ts.sim import SimConfig, SimHandle, run_in_thread

SIM_NOW = datetime(2024, 3, 1, 12, 0, 30, tzinfo=UTC)
SIM_NOW_MS = int(SIM_NOW.timestamp() * 1000)


def sim_config(**changes) -> SimConfig:
    """The tests' default simulator settings with some changed. The option chain is thinned to about a quarter
    (~180 options per currency) so tests that touch options stay fast; option_strike_density=1.0 gives the
    real-sized chain (~800 per currency)."""
    base = {"seed": 42, "now": SIM_NOW, "rate_limit": "off", "option_strike_density": 0.25}
    base.update(changes)
    return SimConfig(**base)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with run_in_thread(sim_config()) as handle:
        yield handle


@pytest.fixture(scope="module")
def sim_url(sim: SimHandle) -> str:
    return sim.url


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimHandle]]:
    """make_sim(**settings) -> a running simulator, stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda **changes: stack.enter_context(run_in_thread(sim_config(**changes)))
