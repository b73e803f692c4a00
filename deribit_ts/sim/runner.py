"""Running the simulator: in a background thread (tests, benchmarks) or in the foreground (the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from aiohttp import web

from deribit_ts.errors import UserError
from deribit_ts.sim.config import SimConfig
from deribit_ts.sim.market import SimMarket
from deribit_ts.sim.server import SimServer


@dataclass
class SimHandle:
    """A running simulator: its base URL, its settings, its market truth and its counters."""

    url: str
    config: SimConfig
    server: SimServer

    @property
    def market(self) -> SimMarket:
        return self.server.market

    def stats(self) -> dict:
        """Same dict as GET /_sim/stats."""
        return orjson.loads(orjson.dumps(self.server.stats.snapshot()))

    def reset(self) -> None:
        """Zero the counters, refill every credit pool and restart the fault sequence (POST /_sim/reset)."""
        self.server.reset()

    def set_now(self, now_ms: int) -> None:
        """Move the simulated clock."""
        self.server.market.clock.set_ms(now_ms)


SHUTDOWN_GRACE_S = 1.0


def base_url(host: str, port: int) -> str:
    """http://HOST:PORT, with an IPv6 address in brackets (http://[::1]:8765) as URLs require."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start(server: SimServer, host: str, port: int) -> tuple[web.AppRunner, int]:
    # On Ctrl-C/SIGTERM, requests still inside their --latency (or a stall fault) get this long to finish before
    # they are cancelled: the default 60 s grace made a slow simulator look as if it ignored the signal.
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from exc
    bound = runner.addresses[0][1]
    return runner, bound


@contextlib.contextmanager
def run_in_thread(config: SimConfig | None = None) -> Iterator[SimHandle]:
    """Serve the simulator from a daemon thread while the block runs; yields a SimHandle."""
    config = config or SimConfig()
    server = SimServer(config)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["runner"], box["port"] = loop.run_until_complete(_start(server, config.host, config.port))
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(box["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="deribit-sim", daemon=True)
    thread.start()
    ready.wait()
    if "error" in box:
        raise box["error"]
    try:
        yield SimHandle(base_url(config.host, box["port"]), config, server)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def serve_forever(config: SimConfig, on_ready=None) -> None:
    """Serve in the foreground until interrupted (the CLI)."""
    server = SimServer(config)

    async def main() -> None:
        runner, port = await _start(server, config.host, config.port)
        if on_ready is not None:
            on_ready(base_url(config.host, port))
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
