"""The story of spotting HTTP/1 from its first bytes, and finding a start line again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.dissect.httpstart import (
    MAYBE,
    METHODS,
    NO,
    REQUEST_LINE,
    STATUS_LINE,
    YES,
    sniff,
    sniff_request,
    sniff_response,
)


def test_every_method_is_recognised() -> None:
    for method in METHODS:
        assert sniff_request(f"{method} /x HTTP/1.1\r\n".encode()) == YES, method


def test_prefixes_ask_for_more_bytes() -> None:
    assert sniff_request(b"") == MAYBE
    assert sniff_request(b"PROP") == MAYBE
    assert sniff_response(b"HTTP/") == MAYBE


def test_http2_preface_and_other_protocols_are_not_http1() -> None:
    assert sniff_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == NO
    assert sniff_request(b"GET / HTTP/2.0\r\n") == NO
    assert sniff_request(b"\x16\x03\x01\x02\x00") == NO
    assert sniff_request(b"*1\r\n$4\r\nPING\r\n") == NO
    assert sniff_request(b"DESCRIBE rtsp://cam RTSP/1.0\r\n") == NO


def test_mid_stream_response_counts() -> None:
    assert sniff(b"", b"HTTP/1.1 200 OK\r\n") == YES
    assert sniff(b"binary", b"") == MAYBE
    assert sniff(b"binary", b"also binary") == NO


def test_start_line_scanners() -> None:
    assert REQUEST_LINE.search(b'tail"}GET /a HTTP/1.1\r\n').start() == 6  # type: ignore[union-attr]
    assert REQUEST_LINE.search(b"GET /a HTTP/1.1") is None  # line not complete yet
    assert STATUS_LINE.search(b"xx\r\nHTTP/1.0 404 ").start() == 4  # type: ignore[union-attr]
    assert STATUS_LINE.search(b"HTTP/1.1 20") is None


@given(st.binary(max_size=80), st.binary(max_size=80))
def test_sniff_is_total(client: bytes, server: bytes) -> None:
    assert sniff(client, server) in (YES, NO, MAYBE)
