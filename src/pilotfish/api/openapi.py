"""The OpenAPI 3.1 document of the API (served at /openapi.json).

Response schemas come from the msgspec Structs the API returns (`Page`, `Entry`, `Bucket`,
`ServiceMap`), so the document cannot drift from the wire format.  Parameters carry the same
bounds `api.params` enforces.  The WebSocket stream cannot be described in OpenAPI; its
messages are documented under the `x-websocket` extension.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pilotfish import __version__
from pilotfish.api.params import CURSOR_PATTERN, GROUPS, MAX_LIMIT, MAX_VALUE
from pilotfish.model import Entry
from pilotfish.store.base import Bucket, Page, ServiceMap

_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "refused: the error says why")


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_TEXT = {"type": "string", "maxLength": MAX_VALUE}
_QUERY = _q("q", _TEXT, "filter in the pilotfish query language, e.g. `http && status_code >= 500`")
_LIMIT = _q(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
    f"page size, clamped to 1..{MAX_LIMIT}",
)
_CURSOR = {"type": "string", "pattern": f"^{CURSOR_PATTERN}$"}


def _get(
    summary: str,
    params: list[dict[str, Any]],
    ok: dict[str, Any],
    errors: tuple[str, ...] = ("400",),
) -> dict[str, Any]:
    responses = {"200": ok, **dict.fromkeys(errors, _ERROR), "500": _ERROR}
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def _schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [Page, Entry, Bucket, ServiceMap], ref_template=_REF
    )
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "position": {"type": "integer", "description": "0-based column of a query error"},
            "parameter": {"type": "string"},
        },
    }
    components["Har"] = {
        "type": "object",
        "required": ["log"],
        "properties": {
            "log": {
                "type": "object",
                "required": ["version", "creator", "entries"],
                "properties": {
                    "version": {"const": "1.2"},
                    "creator": {"type": "object"},
                    "entries": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    }
    components["Field"] = {
        "type": "object",
        "required": ["kind", "name"],
        "properties": {
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "help": {"type": "string"},
        },
    }
    return components


_OBJECT = {"type": "object"}
_LATENCY = _q(
    "latency",
    {"type": "string", "enum": ["0", "1", "true", "false"]},
    "also return each latency histogram (what a hub needs to merge percentiles)",
)


def _paths() -> dict[str, Any]:
    return {
        "/": _get("index of the API (or the dashboard when built)", [], _json(_OBJECT), ()),
        "/api/entries": _get(
            "entries, newest first, with cursor paging",
            [
                _QUERY,
                _LIMIT,
                _q("before", _CURSOR, "`older` cursor of a previous page"),
                _q("after", _CURSOR, "`newer` cursor of a previous page"),
            ],
            _json(_ref("Page")),
        ),
        "/api/entries/{entry_id}": {
            "get": {
                "summary": "one entry, bodies included",
                "parameters": [
                    {
                        "name": "entry_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": _json(_ref("Entry")), "404": _ERROR, "500": _ERROR},
            }
        },
        "/api/stats": _get(
            "count, errors and latency percentiles per time bucket",
            [
                _QUERY,
                _q(
                    "bucket",
                    {"type": "string", "pattern": r"^[0-9]{1,9}(\.[0-9]{1,6})?(ms|s|m|h)?$"},
                    "bucket width: seconds or 500ms, 10s, 1m, 1h (1ms..24h)",
                ),
                _q("group_by", {"type": "string", "enum": ["", *GROUPS]}, "split by this field"),
                _LATENCY,
            ],
            _json({"type": "array", "items": _ref("Bucket")}),
        ),
        "/api/servicemap": _get(
            "workloads and the calls between them",
            [_QUERY, _LATENCY],
            _json(_ref("ServiceMap")),
        ),
        "/api/export.pcap": _get(
            "the packets of the matching flows as one pcap file",
            [_QUERY],
            {
                "description": "pcap (attachment)",
                "content": {
                    "application/vnd.tcpdump.pcap": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            },
        ),
        "/api/export.har": _get(
            "matching HTTP entries as HAR 1.2 (oldest first)",
            [_QUERY, _LIMIT],
            _json(_ref("Har")),
        ),
        "/api/fields": _get(
            "fields and functions of the query language",
            [],
            _json({"type": "array", "items": _ref("Field")}),
            (),
        ),
        "/api/query/check": _get(
            "validate a query",
            [_QUERY],
            _json({"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}),
        ),
        "/api/workers": _get(
            "the workers behind this API and their state",
            [],
            _json({"type": "array", "items": _OBJECT}),
            (),
        ),
        "/api/metrics": _get(
            "the counters behind /metrics, as nested JSON (what a hub sums)",
            [],
            _json(_OBJECT),
            (),
        ),
        "/metrics": _get(
            "Prometheus metrics",
            [],
            {"description": "text exposition", "content": {"text/plain": {"schema": _TEXT}}},
            (),
        ),
        "/healthz": _get("liveness", [], _json(_OBJECT), ()),
        "/readyz": {
            "get": {
                "summary": "readiness",
                "parameters": [],
                "responses": {
                    "200": _json(_OBJECT),
                    "503": _json(_OBJECT, "not ready"),
                    "500": _ERROR,
                },
            }
        },
        "/openapi.json": _get("this document", [], _json(_OBJECT), ()),
    }


_WEBSOCKET = {
    "/api/stream": {
        "parameters": ["q"],
        "messages": {
            "hello": '{"type": "hello", "query": str}, first',
            "entries": '{"type": "entries", "count": int, "entries": [Entry]}, matching '
            "entries in order, as many per message as waited when it was sent",
            "dropped": '{"type": "dropped", "count": int, "unfiltered": int}, matching '
            "entries skipped since the last notice, and entries lost before filtering",
            "notice": '{"type": "notice", ...}, about the source (a hub\'s worker down or up)',
            "error": '{"type": "error", "error": str, "position": int}, then close 1008',
        },
    }
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pilotfish",
            "version": __version__,
            "description": "API traffic captured by pilotfish: entries, stats, exports, live.",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas()},
        "x-websocket": _WEBSOCKET,
    }
