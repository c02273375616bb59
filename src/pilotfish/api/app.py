"""The HTTP API of a worker (and later the hub): `create_app(backend) -> Starlette`.

Routes: /api/entries, /api/entries/{id}, /api/stats, /api/servicemap, /api/export.pcap,
/api/export.har, /api/fields, /api/query/check, /api/workers, /api/metrics (the counters as
JSON), /api/stream (WebSocket, see `api.stream`), /metrics, /healthz, /readyz,
/openapi.json, and / (the dashboard from `static_dir` when it exists, else a JSON index).

Every answer but the pcap, the metrics and the dashboard is JSON.  Bad input (invalid
query, unknown id, bad limit/cursor/bucket, a parameter the route does not take, a wrong
method) is a 4xx `{"error": ...}` (plus `position` for queries, `parameter` for parameters);
an exception in a handler is logged and answered 500 `{"error": "internal error"}`; the
server keeps serving.  The app never touches capture: it only awaits the `Backend`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from pilotfish.api import params
from pilotfish.api.backend import Backend
from pilotfish.api.har import HTTP_PROTOCOLS, har
from pilotfish.api.metrics import CONTENT_TYPE, Exposition
from pilotfish.api.openapi import document
from pilotfish.api.params import ApiError
from pilotfish.api.stream import EncodedEntries, serve_stream
from pilotfish.query import catalog

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
MAX_ID = 256
PCAP_TYPE = "application/vnd.tcpdump.pcap"
_ENCODER = msgspec.json.Encoder()

Handler = Callable[[Request], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(_ENCODER.encode(data), status, media_type="application/json")


def _get(request: Request, *allowed: str) -> dict[str, str]:
    """The query parameters, after refusing unknown names and over-long values."""
    items = request.query_params.multi_items()
    params.check_known((k for k, _ in items), allowed)
    return {k: params.check_value(k, v) for k, v in items}


class _Handlers:
    """The route handlers over one backend (kept together so each stays a few lines)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.exposition = Exposition()
        self.texts = EncodedEntries()

    async def entries(self, request: Request) -> Response:
        p = _get(request, "q", "limit", "before", "after")
        page = await self.backend.entries(
            params.parse_query(p.get("q", "")),
            params.parse_limit(p.get("limit")),
            params.parse_cursor("before", p.get("before")),
            params.parse_cursor("after", p.get("after")),
        )
        return json_response(page)

    async def entry(self, request: Request) -> Response:
        _get(request)
        entry_id: str = request.path_params["entry_id"]
        found = None if len(entry_id) > MAX_ID else await self.backend.entry(entry_id)
        if found is None:
            raise ApiError(404, "no such entry", id=entry_id[:MAX_ID])
        return json_response(found)

    async def stats(self, request: Request) -> Response:
        p = _get(request, "q", "bucket", "group_by", "latency")
        buckets = await self.backend.stats(
            params.parse_query(p.get("q", "")),
            params.parse_bucket(p.get("bucket")),
            params.parse_group_by(p.get("group_by")),
            params.parse_flag("latency", p.get("latency")),
        )
        return json_response(buckets)

    async def servicemap(self, request: Request) -> Response:
        p = _get(request, "q", "latency")
        smap = await self.backend.servicemap(
            params.parse_query(p.get("q", "")), params.parse_flag("latency", p.get("latency"))
        )
        return json_response(smap)

    async def export_pcap(self, request: Request) -> Response:
        p = _get(request, "q")
        chunks = self.backend.export_pcap(params.parse_query(p.get("q", "")))
        first = await anext(chunks, b"")  # errors surface here, before the 200 is sent
        return StreamingResponse(
            _prepend(first, chunks),
            media_type=PCAP_TYPE,
            headers={"Content-Disposition": 'attachment; filename="pilotfish.pcap"'},
        )

    async def export_har(self, request: Request) -> Response:
        p = _get(request, "q", "limit")
        limit = params.parse_limit(p.get("limit") or str(params.MAX_LIMIT))
        text = params.parse_query(p.get("q", ""))
        only_http = " || ".join(sorted(HTTP_PROTOCOLS))
        text = f"({text}) && ({only_http})" if text.strip() else only_http
        page = await self.backend.entries(text, limit, None, None)
        return json_response(har(reversed(page.entries)))

    async def fields(self, request: Request) -> Response:
        _get(request)
        return json_response(catalog())

    async def check(self, request: Request) -> Response:
        p = _get(request, "q")
        params.parse_query(p.get("q", ""))
        return json_response({"ok": True})

    async def workers(self, request: Request) -> Response:
        _get(request)
        return json_response(await self.backend.workers())

    async def metrics(self, request: Request) -> Response:
        _get(request)
        snapshot = await self.backend.metrics()
        return Response(self.exposition.render(snapshot), media_type=CONTENT_TYPE)

    async def metrics_json(self, request: Request) -> Response:
        _get(request)
        return json_response(await self.backend.metrics())

    async def healthz(self, request: Request) -> Response:
        return json_response({"ok": True})

    async def readyz(self, request: Request) -> Response:
        _get(request)
        health = await self.backend.health()
        return json_response(health, 200 if health.get("ready") else 503)

    async def openapi(self, request: Request) -> Response:
        _get(request)
        return json_response(document())

    async def index(self, request: Request) -> Response:
        _get(request)
        doc = document()
        return json_response(
            {"name": "pilotfish", "version": doc["info"]["version"], "paths": sorted(doc["paths"])}
        )

    async def stream(self, ws: WebSocket) -> None:
        await serve_stream(ws, self.backend, self.texts)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response({"error": str(exc.detail)}, exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("api: %s %s failed", request.method, request.url.path, exc_info=exc)
    return json_response({"error": "internal error"}, 500)


def create_app(backend: Backend, static_dir: Path | None = STATIC_DIR) -> Starlette:
    """The ASGI app serving `backend` (and the dashboard in `static_dir` if it exists)."""
    h = _Handlers(backend)
    routes: list[BaseRoute] = [
        Route("/api/entries", h.entries),
        Route("/api/entries/{entry_id}", h.entry),
        Route("/api/stats", h.stats),
        Route("/api/servicemap", h.servicemap),
        Route("/api/export.pcap", h.export_pcap),
        Route("/api/export.har", h.export_har),
        Route("/api/fields", h.fields),
        Route("/api/query/check", h.check),
        Route("/api/workers", h.workers),
        Route("/api/metrics", h.metrics_json),
        Route("/metrics", h.metrics),
        Route("/healthz", h.healthz),
        Route("/readyz", h.readyz),
        Route("/openapi.json", h.openapi),
        WebSocketRoute("/api/stream", h.stream),
    ]
    if static_dir is not None and static_dir.is_dir():
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True), name="static"))
    else:
        routes.append(Route("/", h.index))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.close()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
