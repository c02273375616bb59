"""HTTP entries as a HAR 1.2 log (what browsers' devtools and many tools import)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pilotfish import __version__
from pilotfish.model import Entry, Payload

_HTTP = frozenset(("http", "http2", "grpc"))


def _headers(p: Payload | None) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in (p.headers if p else {}).items()]


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def har_entry(e: Entry) -> dict[str, Any]:
    req, resp = e.request, e.response
    host = (req.headers.get("host") if req else None) or f"{e.dst.ip}:{e.dst.port}"
    url = f"http://{host}{e.path}" if e.path.startswith("/") else e.path
    wait_ms = (e.elapsed_us or 0) / 1000
    request: dict[str, Any] = {
        "method": e.method,
        "url": url,
        "httpVersion": (req.version if req and req.version else "HTTP/1.1"),
        "headers": _headers(req),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query)],
        "cookies": [],
        "headersSize": -1,
        "bodySize": req.body_size if req else 0,
    }
    if req and req.body:
        request["postData"] = {
            "mimeType": req.headers.get("content-type", ""),
            "text": req.body if req.encoding == "text" else base64.b64decode(req.body).hex(),
        }
    content: dict[str, Any] = {
        "size": resp.body_size if resp else 0,
        "mimeType": (resp.headers.get("content-type", "") if resp else ""),
    }
    if resp and resp.body:
        content["text"] = resp.body
        if resp.encoding == "base64":
            content["encoding"] = "base64"
    status = e.status if isinstance(e.status, int) else 0
    return {
        "startedDateTime": _iso(e.timestamp),
        "time": wait_ms,
        "request": request,
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": (resp.version if resp and resp.version else "HTTP/1.1"),
            "headers": _headers(resp),
            "cookies": [],
            "content": content,
            "redirectURL": (resp.headers.get("location", "") if resp else ""),
            "headersSize": -1,
            "bodySize": resp.body_size if resp else -1,
        },
        "cache": {},
        "timings": {"send": 0, "wait": wait_ms, "receive": 0},
        "serverIPAddress": e.dst.ip,
        "comment": e.id,
    }


def har(entries: Iterable[Entry]) -> dict[str, Any]:
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "pilotfish", "version": __version__},
            "entries": [har_entry(e) for e in entries if e.protocol in _HTTP],
        }
    }
