"""The OpenAPI document lists every route with its responses."""

from pilotfish.api.openapi import document


def test_document_covers_the_api() -> None:
    doc = document()
    for path in (
        "/api/entries",
        "/api/entries/{entry_id}",
        "/api/stats",
        "/api/servicemap",
        "/api/export.pcap",
        "/api/export.har",
        "/metrics",
        "/healthz",
        "/readyz",
    ):
        assert "get" in doc["paths"][path] and doc["paths"][path]["get"]["responses"]
