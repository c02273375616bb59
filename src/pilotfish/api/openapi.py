"""The OpenAPI 3.0 document of the API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pilotfish import __version__

_ERROR = {
    "description": "bad input",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "position": {"type": "integer"}},
            }
        }
    },
}
_JSON = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
_LIST = {"description": "ok", "content": {"application/json": {"schema": {"type": "array"}}}}


def _param(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_Q = _param("q", "query in the pilotfish filter language, e.g. http && status_code >= 500")


def _get(summary: str, params: list[dict[str, Any]], ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {"200": ok, "400": _ERROR, "500": _ERROR},
        }
    }


def document() -> dict[str, Any]:
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
    }
    cursor = "cursor from a previous page"
    return {
        "openapi": "3.0.3",
        "info": {"title": "pilotfish", "version": __version__},
        "paths": {
            "/api/entries": _get(
                "entries, newest first, cursor paging",
                [
                    _Q,
                    limit,
                    _param("before", cursor, "^[0-9]+$"),
                    _param("after", cursor, "^[0-9]+$"),
                ],
                _JSON,
            ),
            "/api/entries/{entry_id}": {
                "get": {
                    "summary": "one entry with bodies",
                    "parameters": [
                        {
                            "name": "entry_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _JSON, "404": _ERROR},
                }
            },
            "/api/stats": _get(
                "counts, errors and latency percentiles per time bucket",
                [
                    _Q,
                    _param("bucket", "60, 10s, 1m, 500ms"),
                    _param("group_by", "protocol, dst.service, ..."),
                ],
                _LIST,
            ),
            "/api/servicemap": _get("workloads and the calls between them", [_Q], _JSON),
            "/api/export.pcap": _get(
                "packets of the matching flows",
                [_Q],
                {"description": "pcap", "content": {"application/vnd.tcpdump.pcap": {}}},
            ),
            "/api/export.har": _get("HTTP entries as HAR 1.2", [_Q], _JSON),
            "/api/fields": _get("fields and functions of the query language", [], _LIST),
            "/api/query/check": _get("validate a query", [_Q], _JSON),
            "/metrics": _get(
                "Prometheus metrics", [], {"description": "text", "content": {"text/plain": {}}}
            ),
            "/healthz": _get("liveness", [], _JSON),
            "/readyz": {"get": {"summary": "readiness", "responses": {"200": _JSON, "503": _JSON}}},
        },
    }
