"""A local server that speaks Deribit's public API v2 over a deterministic simulated market.

    from deribit_ts.sim import SimConfig, run_in_thread
    with run_in_thread(SimConfig(now=datetime(2024, 3, 1, tzinfo=UTC))) as sim:
        ccxt.deribit({"urls": {"api": {"rest": sim.url}}})

SimMarket(config) answers the same questions without HTTP (the truth tests compare against).
"""

from deribit_ts.sim.config import FAULT_KINDS, Pathologies, SimConfig
from deribit_ts.sim.market import SimMarket
from deribit_ts.sim.runner import SimHandle, run_in_thread, serve_forever

__all__ = ["FAULT_KINDS", "Pathologies", "SimConfig", "SimHandle", "SimMarket", "run_in_thread", "serve_forever"]
