"""HAR 1.2: every document validates against the schema beside this file; URL from Host,
status text, base64 bodies, timings; non-HTTP entries left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.api.har import har, iso8601
from pilotfish.model import Payload
from tests.api.schema import problems
from tests.store.entries import T0, make

HAR_SCHEMA: dict[str, Any] = json.loads(Path(__file__).with_name("har12.schema.json").read_text())


def valid(doc: dict[str, Any]) -> bool:
    found = problems(doc, HAR_SCHEMA, HAR_SCHEMA)
    assert found == []
    return True


def test_a_full_exchange() -> None:
    e = make(1, path="/a?x=1&y=&z=3")
    e.request = Payload(
        size=10, headers={"host": "shop.example", "content-type": "text/plain"}, body="hi",
        body_size=2, version="HTTP/1.0",
    )  # fmt: skip
    e.response = Payload(
        size=20,
        headers={"content-type": "image/png", "location": "/b"},
        body="AAEC",
        body_size=3,
        encoding="base64",
    )
    e.status = 302
    doc = har([e, make(2, protocol="dns")])
    assert valid(doc)
    (h,) = doc["log"]["entries"]
    req, resp = h["request"], h["response"]
    assert req["url"] == "http://shop.example/a?x=1&y=&z=3"
    assert req["httpVersion"] == "HTTP/1.0"
    assert req["queryString"] == [
        {"name": "x", "value": "1"},
        {"name": "y", "value": ""},
        {"name": "z", "value": "3"},
    ]
    assert req["postData"] == {"mimeType": "text/plain", "text": "hi"}
    assert resp["status"] == 302 and resp["statusText"] == "Found"
    assert resp["redirectURL"] == "/b"
    assert resp["content"] == {
        "size": 3,
        "mimeType": "image/png",
        "text": "AAEC",
        "encoding": "base64",
    }
    assert h["time"] == 1.0 and h["timings"] == {"send": 0, "wait": 1.0, "receive": 0}
    assert h["startedDateTime"] == "2026-01-01T00:00:01.000Z"


def test_no_host_header_uses_the_server_address_and_grpc_is_http2() -> None:
    e = make(3, protocol="grpc", path="/shop.Cart/Get")
    e.request = Payload(headers={":authority": "cart:50051"})
    doc = har([e, make(4, elapsed_us=None)])
    assert valid(doc)
    first, second = doc["log"]["entries"]
    assert first["request"]["url"] == "http://cart:50051/shop.Cart/Get"
    assert first["request"]["httpVersion"] == "HTTP/2"
    assert second["request"]["url"] == "http://10.2.0.1:80/api/items"
    assert second["time"] == 0  # no response: no wait


def test_binary_request_bodies_say_they_are_base64() -> None:
    e = make(5)
    e.request = Payload(body="AAEC", body_size=3, encoding="base64")
    post = har([e])["log"]["entries"][0]["request"]["postData"]
    assert post["text"] == "AAEC" and "base64" in post["comment"]


def test_odd_statuses_and_missing_payloads_still_validate() -> None:
    odd = [make(6, status="error"), make(7, status=None), make(8, status=799)]
    for e in odd:
        e.request = e.response = None
    doc = har(odd)
    assert valid(doc)
    assert [h["response"]["status"] for h in doc["log"]["entries"]] == [0, 0, 799]
    assert doc["log"]["entries"][2]["response"]["statusText"] == ""


def test_empty_input_is_an_empty_log() -> None:
    doc = har([])
    assert valid(doc) and doc["log"]["entries"] == []


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_iso8601_is_always_well_formed_utc(ts: float) -> None:
    text = iso8601(ts)
    assert (
        problems(text, HAR_SCHEMA["definitions"]["entry"]["properties"]["startedDateTime"], {})
        == []
    )
    assert text.startswith(iso8601(float(int(ts)))[:19])


@given(
    path=st.text(max_size=40),
    status=st.one_of(st.none(), st.integers(-5, 1000), st.text(max_size=5)),
    body=st.text(max_size=20),
)
def test_any_entry_gives_valid_har(path: str, status: int | str | None, body: str) -> None:
    e = make(9, path=path, status=status, body=body, ts=T0 + 0.9999)
    assert valid(har([e]))
