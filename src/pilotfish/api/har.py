"""HTTP entries as a HAR 1.2 log (what browsers' devtools and many tools import).

Only HTTP-like entries (`http`, `http2`, `grpc`) are exported; others are left out.  The URL
is rebuilt from the Host header (or `:authority`, else the server address) and the path,
always with scheme http (pilotfish sees plaintext only).  Header sizes are unknown after
dissection and given as -1; body sizes are the decoded sizes pilotfish recorded.  Binary
bodies stay base64: the response content carries `encoding: "base64"`, request postData
(which has no encoding field in HAR 1.2) says so in its `comment`.  Timings: pilotfish
measures request-start to response-start, reported as `wait`; `send` and `receive` are 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pilotfish import __version__
from pilotfish.model import Entry, Payload

HTTP_PROTOCOLS = frozenset(("http", "http2", "grpc"))
_STATUS_TEXT = {s.value: s.phrase for s in HTTPStatus}


def _headers(p: Payload | None) -> list[dict[str, str]]:
    return [] if p is None else [{"name": k, "value": v} for k, v in p.headers.items()]


def _header(p: Payload | None, *names: str) -> str:
    if p is None:
        return ""
    for name in names:
        value = p.headers.get(name)
        if value:
            return value
    return ""


def iso8601(ts: float) -> str:
    """Epoch seconds -> "2026-01-01T00:00:00.123Z" (UTC, milliseconds)."""
    whole = int(ts // 1)
    millis = min(round((ts - whole) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _version(p: Payload | None, protocol: str) -> str:
    if p is not None and p.version:
        return p.version
    return "HTTP/2" if protocol in ("http2", "grpc") else "HTTP/1.1"


def _url(e: Entry) -> str:
    if "://" in e.path:
        return e.path
    host = _header(e.request, "host", ":authority") or f"{e.dst.ip}:{e.dst.port}"
    path = e.path if e.path.startswith("/") else "/" + e.path
    return f"http://{host}{path}"


def _request(e: Entry, url: str) -> dict[str, Any]:
    req = e.request
    out: dict[str, Any] = {
        "method": e.method or "GET",
        "url": url,
        "httpVersion": _version(req, e.protocol),
        "headers": _headers(req),
        "queryString": [
            {"name": k, "value": v}
            for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        ],
        "cookies": [],
        "headersSize": -1,
        "bodySize": req.body_size if req is not None else 0,
    }
    if req is not None and req.body:
        post: dict[str, Any] = {"mimeType": _header(req, "content-type"), "text": req.body}
        if req.encoding == "base64":
            post["comment"] = "text is base64"
        out["postData"] = post
    return out


def _response(e: Entry) -> dict[str, Any]:
    resp = e.response
    status = e.status if isinstance(e.status, int) and not isinstance(e.status, bool) else 0
    content: dict[str, Any] = {
        "size": resp.body_size if resp is not None else 0,
        "mimeType": _header(resp, "content-type"),
    }
    if resp is not None and resp.body:
        content["text"] = resp.body
        if resp.encoding == "base64":
            content["encoding"] = "base64"
    return {
        "status": status,
        "statusText": _STATUS_TEXT.get(status, ""),
        "httpVersion": _version(resp, e.protocol),
        "headers": _headers(resp),
        "cookies": [],
        "content": content,
        "redirectURL": _header(resp, "location"),
        "headersSize": -1,
        "bodySize": resp.body_size if resp is not None else -1,
    }


def har_entry(e: Entry) -> dict[str, Any]:
    """One HAR entry for an HTTP-like pilotfish entry."""
    wait_ms = max(e.elapsed_us or 0, 0) / 1000
    return {
        "startedDateTime": iso8601(e.timestamp),
        "time": wait_ms,
        "request": _request(e, _url(e)),
        "response": _response(e),
        "cache": {},
        "timings": {"send": 0, "wait": wait_ms, "receive": 0},
        "serverIPAddress": e.dst.ip,
        "connection": e.stream,
        "comment": e.id,
    }


def har(entries: Iterable[Entry]) -> dict[str, Any]:
    """A HAR 1.2 document of the HTTP-like entries among `entries`, in the given order."""
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "pilotfish", "version": __version__},
            "entries": [har_entry(e) for e in entries if e.protocol in HTTP_PROTOCOLS],
        }
    }
