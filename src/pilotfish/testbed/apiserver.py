"""A small JSON HTTP/1.1 API for the testbed: `python -m pilotfish.testbed.apiserver`.

Standard library only (it runs inside pod namespaces).  Keep-alive HTTP/1.1, one thread
per connection.  Endpoints, chosen to exercise pilotfish's HTTP dissector:

  GET  /healthz               200 text "ok"
  GET  /api/v1/cart[?user=U]  200 JSON (Content-Length)
  GET  /api/v1/items          200 JSON list
  GET  /chunked               200 JSON sent with Transfer-Encoding: chunked (4 chunks)
  GET  /gzip                  200 JSON with Content-Encoding: gzip
  GET  /slow?ms=N             200 after sleeping N ms (capped at MAX_SLOW_MS)
  POST /echo                  200 echoing the request body and its content type
  *                           404 JSON error (405 for a known path with the wrong method)

Bounds: request bodies above MAX_BODY are refused with 413 and the connection is closed;
the slow endpoint sleeps at most MAX_SLOW_MS; logging is off.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

MAX_BODY: Final = 1 << 20
MAX_SLOW_MS: Final = 5_000
ITEMS: Final = tuple(
    {"id": i, "name": f"item-{i}", "price_cents": 100 + 37 * i, "tags": ["demo", f"t{i % 3}"]}
    for i in range(1, 11)
)
_GET_PATHS: Final = frozenset(
    {"/healthz", "/api/v1/cart", "/api/v1/items", "/chunked", "/gzip", "/slow"}
)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class ApiHandler(BaseHTTPRequestHandler):
    """Routes one request at a time on a keep-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "pilotfish-testbed-api/1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            self._send(200, b"ok", "text/plain")
        elif url.path == "/api/v1/cart":
            user = query.get("user", ["anonymous"])[0][:64]
            cart = {"user": user, "items": [ITEMS[0], ITEMS[3]], "total_cents": 100 + 37 + 211}
            self._send(200, _json(cart))
        elif url.path == "/api/v1/items":
            self._send(200, _json({"items": ITEMS, "count": len(ITEMS)}))
        elif url.path == "/chunked":
            self._send_chunked(_json({"items": ITEMS}), pieces=4)
        elif url.path == "/gzip":
            body = gzip.compress(_json({"items": ITEMS, "compressed": True}), mtime=0)
            self._send(200, body, extra={"Content-Encoding": "gzip"})
        elif url.path == "/slow":
            try:
                ms = int(query.get("ms", ["200"])[0])
            except ValueError:
                self._send(400, _json({"error": "ms must be an integer"}))
                return
            ms = max(0, min(ms, MAX_SLOW_MS))
            time.sleep(ms / 1000)
            self._send(200, _json({"slept_ms": ms}))
        else:
            self._not_found(url.path)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/echo":
            if url.path in _GET_PATHS:
                self._drain_or_close()
                self._send(405, _json({"error": "method not allowed"}))
            else:
                self._drain_or_close()
                self._not_found(url.path)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(413, _json({"error": "body too large or bad length", "max": MAX_BODY}))
            return
        body = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "application/octet-stream")
        self._send(200, body, ctype, extra={"X-Echo-Length": str(len(body))})

    def _drain_or_close(self) -> None:
        """Read a small request body so keep-alive stays in sync; close on a big one."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= MAX_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _not_found(self, path: str) -> None:
        self._send(404, _json({"error": "not found", "path": path[:256]}))

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, body: bytes, pieces: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        step = max(1, -(-len(body) // pieces))
        out = bytearray()
        for start in range(0, len(body), step):
            chunk = body[start : start + step]
            out += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        out += b"0\r\n\r\n"
        self.wfile.write(bytes(out))


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """A bound, not yet serving, API server (port 0 picks a free port)."""
    server = ThreadingHTTPServer((host, port), ApiHandler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pilotfish.testbed.apiserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
