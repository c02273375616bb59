"""The Entry JSON: exactly the DESIGN.md schema, round-tripping through msgspec."""

from __future__ import annotations

import msgspec

from pilotfish.model import ENTRY_DECODER, ENTRY_ENCODER, Endpoint, Entry, Payload, summary_of


def test_entry_json_has_design_fields() -> None:
    e = Entry(
        id="n1-1",
        protocol="http",
        timestamp=1732500000.123456,
        elapsed_us=1534,
        src=Endpoint(ip="10.0.0.1", port=5555),
        dst=Endpoint(ip="10.0.0.2", port=80, pod="web"),
        method="GET",
        path="/api/v1/cart?x=1",
        status=200,
        summary=summary_of("GET", "/api/v1/cart?x=1", 200),
        request=Payload(size=123, headers={"host": "web"}),
        response=Payload(size=456, body="{}", body_size=2),
        capture="pcap",
        stream="n1-3",
    )
    doc = msgspec.json.decode(ENTRY_ENCODER.encode(e))
    for key in (
        "id",
        "protocol",
        "timestamp",
        "elapsed_us",
        "src",
        "dst",
        "method",
        "path",
        "status",
        "summary",
        "request",
        "response",
        "tls",
        "capture",
        "stream",
    ):
        assert key in doc
    assert doc["summary"] == "GET /api/v1/cart?x=1 -> 200"
    assert set(doc["src"]) == {"ip", "port", "name", "pod", "namespace", "service", "node"}
    assert doc["request"] == {"size": 123, "headers": {"host": "web"}}
    assert ENTRY_DECODER.decode(ENTRY_ENCODER.encode(e)) == e


def test_summary_without_status() -> None:
    assert summary_of("GET", "/x", None) == "GET /x"
    assert summary_of("A", "example.com", "NXDOMAIN") == "A example.com -> NXDOMAIN"
