"""apiserver: every endpoint over a real keep-alive connection on loopback."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotfish.testbed.apiserver import ITEMS, MAX_BODY, MAX_SLOW_MS, make_server


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def conn(port: int) -> Iterator[http.client.HTTPConnection]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    yield c
    c.close()


def _get(
    conn: http.client.HTTPConnection, path: str, method: str = "GET", body: bytes | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, path, body=body, headers={"Content-Type": "text/plain"})
    resp = conn.getresponse()
    return resp, resp.read()


def test_json_endpoints_share_one_keepalive_connection(conn: http.client.HTTPConnection) -> None:
    resp, body = _get(conn, "/api/v1/items")
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"items": json.loads(json.dumps(ITEMS)), "count": 10}
    sock = conn.sock
    resp, body = _get(conn, "/api/v1/cart?user=bob")
    assert json.loads(body)["user"] == "bob"
    assert conn.sock is sock  # same TCP connection: HTTP/1.1 keep-alive
    assert _get(conn, "/healthz")[1] == b"ok"


def test_chunked_response_is_really_chunked(conn: http.client.HTTPConnection) -> None:
    resp, body = _get(conn, "/chunked")
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Length") is None
    assert len(json.loads(body)["items"]) == 10


def test_gzip_response_decodes(conn: http.client.HTTPConnection) -> None:
    resp, body = _get(conn, "/gzip")
    assert resp.getheader("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(body))["compressed"] is True


def test_slow_endpoint_caps_and_validates(conn: http.client.HTTPConnection) -> None:
    assert json.loads(_get(conn, "/slow?ms=-5")[1]) == {"slept_ms": 0}
    resp, _body = _get(conn, "/slow?ms=soon")
    assert resp.status == 400
    assert MAX_SLOW_MS <= 5_000


def test_not_found_and_wrong_method(conn: http.client.HTTPConnection) -> None:
    resp, body = _get(conn, "/nope")
    assert resp.status == 404 and json.loads(body)["path"] == "/nope"
    resp, body = _get(conn, "/api/v1/items", "POST", b"x")
    assert resp.status == 405
    resp, body = _get(conn, "/nope", "POST", b"x")
    assert resp.status == 404
    assert _get(conn, "/healthz")[1] == b"ok"  # connection still in sync


def test_echo_and_oversized_body(conn: http.client.HTTPConnection) -> None:
    resp, body = _get(conn, "/echo", "POST", b"hello")
    assert (resp.status, body, resp.getheader("X-Echo-Length")) == (200, b"hello", "5")
    conn.putrequest("POST", "/echo")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and resp.getheader("Connection") == "close"
    resp.read()


def test_garbage_request_gets_an_error_and_the_server_lives_on(
    port: int, conn: http.client.HTTPConnection
) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTQ/1.1\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert b"400" in reply and b"Bad request version" in reply
    assert _get(conn, "/healthz")[1] == b"ok"


@settings(max_examples=30)
@given(st.binary(max_size=4096))
def test_echo_returns_any_body_unchanged(port: int, body: bytes) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        resp, got = _get(c, "/echo", "POST", body)
    finally:
        c.close()
    assert resp.status == 200 and got == body
