"""A small hostile stand-in exchange on loopback, for tests of what the project does with bad input.

`hostile_exchange(answer, upstream=None)` serves Deribit's public REST paths. For every request it calls
`answer(method, params, reply)`, where `reply` is the upstream's parsed JSON-RPC reply (the simulator's, when an
upstream is given) or None. The answer may be:
- None: send the upstream's reply unchanged;
- a dict or list: send it as JSON (NaN and Infinity are written as Python's json writes them: NaN, Infinity);
- bytes: send them as the body, as they are;
- an iterator of bytes: stream them (chunked, no Content-Length), counting what was sent in `sent_bytes`.
The real ccxt client talks to it over real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Answer = Callable[[str, dict, Any], Any]


class Stats:
    def __init__(self) -> None:
        self.sent_bytes = 0
        self.requests: list[tuple[str, dict]] = []


@contextlib.contextmanager
def hostile_exchange(answer: Answer, upstream: str | None = None) -> Iterator[tuple[str, Stats]]:
    stats = Stats()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            method, params = parts.path.rsplit("/", 1)[-1], dict(parse_qsl(parts.query))
            stats.requests.append((method, params))
            status, reply = 200, None
            if upstream is not None:
                try:
                    with urllib.request.urlopen(upstream + self.path, timeout=30) as response:
                        status, reply = response.status, json.loads(response.read())
                except urllib.error.HTTPError as exc:
                    status, reply = exc.code, json.loads(exc.read())
            body = answer(method, params, reply)
            if body is None:
                body = reply
            if isinstance(body, dict | list):
                body = json.dumps(body).encode()
            try:
                self._send(status, body)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up (a cap, a stop): its business
                self.close_connection = True

        def _send(self, status: int, body: Any) -> None:
            if isinstance(body, bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                stats.sent_bytes += len(chunk)
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", stats
    finally:
        server.shutdown()
        server.server_close()


def envelope(result: Any) -> dict:
    return {"jsonrpc": "2.0", "id": 1, "result": result}
