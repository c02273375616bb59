"""The HTTP API of a worker (and later the hub): REST, a WebSocket live stream, metrics.

Every request is answered with JSON; bad input (invalid query, unknown id, a limit that is
not a number, a bad bucket) is a 4xx with `{"error": ...}` (and `position` for queries), an
unexpected failure a 500 with the same shape.  Blocking backend calls run in worker threads,
so a heavy query never stalls the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pilotfish.api.backend import Backend
from pilotfish.api.har import har
from pilotfish.api.metrics import exposition
from pilotfish.api.openapi import document
from pilotfish.query import QueryError, catalog, compile_query
from pilotfish.store.base import Query

log = logging.getLogger(__name__)

MAX_LIMIT = 10_000
_ENCODER = msgspec.json.Encoder()
_BUCKET = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DROP_REPORT_S = 0.5


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


def _json(data: Any, status: int = 200) -> Response:
    return Response(_ENCODER.encode(data), status, media_type="application/json")


def _query(request: Request) -> Query | None:
    text = request.query_params.get("q", "")
    if not text.strip():
        return None
    try:
        return compile_query(text)
    except QueryError as exc:
        raise ApiError(400, str(exc), position=exc.position) from exc


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit():
        raise ApiError(400, f"limit must be a whole number (got {raw[:40]!r})")
    return max(1, min(int(raw), MAX_LIMIT))


def _cursor(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and not raw.isdigit():
        raise ApiError(400, f"{name} must be a cursor returned by this API")
    return raw


def parse_bucket(raw: str) -> float:
    """ "60", "10s", "1m", "500ms" -> seconds (at least 1 ms, at most a day)."""
    m = _BUCKET.match(raw.strip())
    if m is None:
        raise ApiError(400, f"bucket must look like 60, 10s, 1m or 500ms (got {raw[:40]!r})")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0.001 <= seconds <= 86_400:
        raise ApiError(400, "bucket must be between 1ms and 24h")
    return seconds


def create_app(backend: Backend) -> Starlette:
    """The ASGI app serving `backend`."""
    metrics_text = exposition(backend.metrics)

    run = backend.call

    async def entries(request: Request) -> Response:
        q, limit = _query(request), _limit(request)
        before, after = _cursor(request, "before"), _cursor(request, "after")
        return _json(await run(backend.entries, q, limit, before, after))

    async def entry(request: Request) -> Response:
        found = await run(backend.entry, request.path_params["entry_id"])
        if found is None:
            raise ApiError(404, "no such entry")
        return _json(found)

    async def stats(request: Request) -> Response:
        q = _query(request)
        bucket = parse_bucket(request.query_params.get("bucket", "60"))
        group_by = request.query_params.get("group_by", "")
        try:
            return _json(await run(backend.stats, q, bucket, group_by))
        except (KeyError, ValueError) as exc:
            raise ApiError(400, f"cannot group by {group_by!r}") from exc

    async def servicemap(request: Request) -> Response:
        return _json(await run(backend.servicemap, _query(request)))

    async def export_pcap(request: Request) -> Response:
        data = await run(backend.export_pcap, _query(request))
        return Response(
            data,
            media_type="application/vnd.tcpdump.pcap",
            headers={"Content-Disposition": 'attachment; filename="pilotfish.pcap"'},
        )

    async def export_har(request: Request) -> Response:
        page = await run(backend.entries, _query(request), MAX_LIMIT, None, None)
        return _json(har(reversed(page.entries)))

    async def fields(request: Request) -> Response:
        return _json(catalog())

    async def check(request: Request) -> Response:
        _query(request)
        return _json({"ok": True})

    async def metrics(request: Request) -> Response:
        body = await run(metrics_text)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(request: Request) -> Response:
        return _json({"ok": True})

    async def readyz(request: Request) -> Response:
        ready = bool(await run(backend.ready))
        return _json({"ready": ready}, 200 if ready else 503)

    async def openapi(request: Request) -> Response:
        return _json(document())

    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        text = ws.query_params.get("q", "")
        try:
            match = compile_query(text).match if text.strip() else None
        except QueryError as exc:
            await ws.send_json({"type": "error", "error": str(exc), "position": exc.position})
            await ws.close(code=1008)
            return
        sub = backend.feed.subscribe(match)
        try:
            await ws.send_json({"type": "hello", "query": text})
            async for message in _messages(sub):
                await ws.send_text(message.decode())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            backend.feed.unsubscribe(sub)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _json(exc.body, exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json({"error": exc.detail}, exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("api: %s %s failed", request.method, request.url.path)
        return _json({"error": "internal error"}, 500)

    routes = [
        Route("/api/entries", entries),
        Route("/api/entries/{entry_id}", entry),
        Route("/api/stats", stats),
        Route("/api/servicemap", servicemap),
        Route("/api/export.pcap", export_pcap),
        Route("/api/export.har", export_har),
        Route("/api/fields", fields),
        Route("/api/query/check", check),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        WebSocketRoute("/api/stream", stream),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend.feed.bind(asyncio.get_running_loop())
        yield

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )


async def _messages(sub: Any) -> AsyncIterator[bytes]:
    """Entries as JSON messages, with a `dropped` notice whenever the client fell behind."""
    loop = asyncio.get_running_loop()
    last_report = 0.0
    while True:
        try:
            entry = await asyncio.wait_for(sub.queue.get(), timeout=_DROP_REPORT_S)
        except TimeoutError:
            entry = None
        now = loop.time()
        if sub.dropped > sub.reported and now - last_report >= _DROP_REPORT_S:
            yield _ENCODER.encode({"type": "dropped", "count": sub.dropped - sub.reported})
            sub.reported, last_report = sub.dropped, now
        if entry is not None:
            yield _ENCODER.encode({"type": "entry", "entry": entry})
