"""The HTTP face of the simulator: Deribit's JSON-RPC envelopes over aiohttp, plus /_sim admin endpoints."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiohttp import web

from deribit_ts.sim.config import SimConfig
from deribit_ts.sim.errors import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RETRY,
    SYSTEM_MAINTENANCE,
    TOO_MANY_REQUESTS,
    ApiError,
    invalid_params,
)
from deribit_ts.sim.faults import BAD_GATEWAY_HTML, FaultPlan
from deribit_ts.sim.market import SimMarket
from deribit_ts.sim.methods import METHODS
from deribit_ts.sim.params import Params
from deribit_ts.sim.ratelimit import CreditLimiter
from deribit_ts.sim.stats import Stats

log = logging.getLogger(__name__)
_JSON = "application/json"
_YEAR_10000_MS = 253_402_300_800_000


class SimServer:
    """State shared by all requests of one simulated exchange."""

    def __init__(self, config: SimConfig, market: SimMarket | None = None) -> None:
        self.config = config
        self.market = market or SimMarket(config)
        self.stats = Stats()
        self.limiter = CreditLimiter(config.rate_limit == "deribit", scale=config.rate_limit_scale)
        self.faults = FaultPlan(config)

    def reset(self) -> None:
        self.stats.reset()
        self.limiter.reset()
        self.faults.reset()

    # ---- app ------------------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024)
        app.router.add_route("*", "/api/v2/public/{method}", self._rest)
        app.router.add_route("*", "/api/v2/private/{method}", self._private)
        app.router.add_post("/api/v2", self._rpc)
        app.router.add_post("/api/v2/", self._rpc)
        app.router.add_get("/_sim/stats", self._admin_stats)
        app.router.add_post("/_sim/reset", self._admin_reset)
        app.router.add_get("/_sim/config", self._admin_config)
        app.router.add_get("/_sim/outages", self._admin_outages)
        app.router.add_post("/_sim/clock", self._admin_clock)
        return app

    # ---- API requests ------------------------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        us_in = time.time_ns() // 1000
        name = request.match_info["method"]
        params: dict = dict(request.rel_url.query)
        request_id = None
        if request.can_read_body:
            body = await self._json_body(request)
            if isinstance(body, ApiError):
                return self._send(request, name, None, body, us_in)
            if not isinstance(body, dict):
                return self._send(request, name, None, BAD_REQUEST, us_in)
            request_id = body.get("id")
            body_params = _params_of(body)
            if isinstance(body_params, ApiError):
                return self._send(request, name, request_id, body_params, us_in)
            params.update(body_params)
        return await self._answer(request, name, params, request_id, us_in)

    async def _rpc(self, request: web.Request) -> web.StreamResponse:
        us_in = time.time_ns() // 1000
        body = await self._json_body(request)
        if isinstance(body, ApiError):
            return self._send(request, "?", None, body, us_in)
        if not isinstance(body, dict):
            return self._send(request, "?", None, BAD_REQUEST, us_in)
        request_id = body.get("id")
        if not isinstance(body.get("method"), str):
            return self._send(request, "?", request_id, BAD_REQUEST, us_in)
        full = body["method"]
        if not full.startswith("public/"):
            return self._send(request, full, request_id, METHOD_NOT_FOUND, us_in)
        params = _params_of(body)
        if isinstance(params, ApiError):
            return self._send(request, full[len("public/") :], request_id, params, us_in)
        return await self._answer(request, full[len("public/") :], params, request_id, us_in)

    @staticmethod
    async def _json_body(request: web.Request):
        """The parsed body, or the ApiError to answer (unparsable JSON, or a body over the size limit)."""
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return PARSE_ERROR
        except web.HTTPRequestEntityTooLarge:
            return ApiError(11050, "bad_request", {"reason": "request body too large"}, http_status=413)

    async def _private(self, request: web.Request) -> web.StreamResponse:
        us_in = time.time_ns() // 1000
        return self._send(
            request,
            "private/" + request.match_info["method"],
            None,
            ApiError(13009, "unauthorized", {"reason": "invalid_token"}, http_status=401),
            us_in,
        )

    async def _answer(self, request: web.Request, name: str, params: dict, request_id, us_in: int):
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000.0)
        fault = self.faults.next()
        if fault is not None:
            handled = await self._fault(request, name, fault, request_id, us_in)
            if handled is not None:
                return handled
        client = request.remote or "?"
        if not self.limiter.allow(client, name):
            return self._send(request, name, request_id, TOO_MANY_REQUESTS, us_in)
        fn = METHODS.get(name)
        if fn is None:
            return self._send(request, name, request_id, METHOD_NOT_FOUND, us_in)
        note: dict = {}
        try:
            # In a worker thread (SimMarket is thread-safe): a heavy request must not stall every other client.
            result = await asyncio.get_running_loop().run_in_executor(
                None, fn, self.market, Params(params), self.market.now_ms(), note
            )
        except ApiError as exc:
            return self._send(request, name, request_id, exc, us_in)
        except Exception:  # a simulator bug: answer like the exchange does, keep the traceback for the developer
            log.exception("simulator error in public/%s with %s", name, params)
            return self._send(request, name, request_id, INTERNAL_ERROR, us_in)
        return self._send(request, name, request_id, result, us_in, candles=note.get("candles", 0), fault=fault)

    def _send(
        self,
        request: web.Request,
        name: str,
        request_id,
        outcome,
        us_in: int,
        *,
        candles: int = 0,
        fault: str | None = None,
    ) -> web.Response:
        envelope: dict = {"jsonrpc": "2.0"}
        if request_id is not None:
            envelope["id"] = request_id
        if isinstance(outcome, ApiError):
            envelope["error"] = outcome.body()
            status = outcome.http_status
        else:
            envelope["result"] = outcome
            status = 200
        us_out = time.time_ns() // 1000
        envelope["usIn"] = us_in
        envelope["usOut"] = us_out
        envelope["usDiff"] = us_out - us_in
        envelope["testnet"] = False
        # numpy columns (chart data) are encoded straight from their buffers: the same JSON as lists of floats
        body = orjson.dumps(envelope, option=orjson.OPT_SERIALIZE_NUMPY)
        self.stats.record(
            name,
            status,
            error_code=outcome.code if isinstance(outcome, ApiError) else None,
            candles=candles,
            size=len(body),
            fault=fault,
        )
        return web.Response(body=body, status=status, content_type=_JSON)

    async def _fault(self, request: web.Request, name: str, fault: str, request_id, us_in: int):
        """Play one fault. Returns a response, or None to go on and answer normally (after a stall)."""
        if fault == "stall":
            await asyncio.sleep(self.config.stall_seconds)
            return None
        if fault == "retry_10040":
            return self._send(request, name, request_id, RETRY, us_in, fault=fault)
        if fault == "maintenance_11051":
            return self._send(request, name, request_id, SYSTEM_MAINTENANCE, us_in, fault=fault)
        self.stats.record(name, 502 if fault == "http_502" else 0, fault=fault)
        if fault == "http_502":
            return web.Response(text=BAD_GATEWAY_HTML, status=502, content_type="text/html")
        if fault == "drop":
            request.transport.close()
            raise asyncio.CancelledError()
        # truncate: promise the whole body, send half of it, hang up
        body = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "result": {"truncated": True, "padding": "x" * 256},
                "usIn": us_in,
                "usOut": us_in,
                "usDiff": 0,
                "testnet": False,
            }
        )
        response = web.StreamResponse(status=200, headers={"Content-Type": _JSON, "Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        request.transport.close()
        raise asyncio.CancelledError()

    # ---- admin -------------------------------------------------------------------------------------------------------
    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.snapshot(), dumps=lambda o: orjson.dumps(o).decode())

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def _admin_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config.public_dict())

    async def _admin_outages(self, request: web.Request) -> web.Response:
        return web.json_response([list(w) for w in self.market.outage_windows()])

    async def _admin_clock(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return _admin_error('body must be JSON like {"now_ms": 1709294400000}')
        if not isinstance(body, dict):
            return _admin_error('body must be a JSON object like {"now_ms": 1709294400000}')
        if "now_ms" in body:
            now_ms = body["now_ms"]
            if isinstance(now_ms, bool) or not isinstance(now_ms, int) or not 0 <= now_ms < _YEAR_10000_MS:
                return _admin_error("now_ms must be an integer of milliseconds since 1970 (before year 10000)")
            self.market.clock.set_ms(now_ms)
        return web.json_response({"now_ms": self.market.now_ms()})


def _params_of(body: dict):
    """A JSON-RPC body's params: an object (absent or null = none), else the -32602 error to answer."""
    params = body.get("params")
    if params is None:
        return {}
    if not isinstance(params, dict):
        return invalid_params("must be an object", "params")
    return params


def _admin_error(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)
