"""A local server that speaks Deribit's public API v2 over a deterministic simulated market.

    from deribit_ts.sim import SimConfig, run_in_thread
    with run_in_thread(SimConfig(now=datetime(2024, 3, 1, tzinfo=UTC))) as sim:
        ccxt.deribit({"urls": {"api": {"rest": sim.url}}})

SimMarket(config) answers the same questions without HTTP (the truth tests compare against).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deribit_ts.sim.config import FAULT_KINDS, Pathologies, SimConfig

if TYPE_CHECKING:
    from deribit_ts.sim.market import SimMarket
    from deribit_ts.sim.runner import SimHandle, run_in_thread, serve_forever

# The market and the HTTP server (aiohttp) load on first use: `deribit-ts sim --help` reads only the limits in
# deribit_ts.sim.config, and importing aiohttp and the market costs a quarter of a second.
_LAZY = {
    "SimMarket": "deribit_ts.sim.market",
    "SimHandle": "deribit_ts.sim.runner",
    "run_in_thread": "deribit_ts.sim.runner",
    "serve_forever": "deribit_ts.sim.runner",
}

__all__ = ["FAULT_KINDS", "Pathologies", "SimConfig", "SimHandle", "SimMarket", "run_in_thread", "serve_forever"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
