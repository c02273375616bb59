"""Whole HTTP/1 messages: the compiled scanner's answers, and the dissector giving the same
exchanges whether a message is read whole or by the incremental parser."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.http1 import Http1Dissector
from pilotfish.dissect.http1whole import request, response
from pilotfish.model import CLIENT, SERVER, Exchange

LIMITS = DissectLimits()
MAX_HEAD = LIMITS.max_header_bytes


def test_request_is_read_whole_with_its_headers_and_body() -> None:
    data = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-Y:  v \r\n\r\nabcNEXT"
    found = request(data, 0, MAX_HEAD)
    assert found is not None
    end, method, target, status, version, headers, head_len, body = found
    assert (method, target, status, version) == (b"POST", b"/a?b=1", 0, "1.1")
    assert headers == {"host": "x", "content-length": "3", "x-y": "v "}
    assert (end, head_len, body) == (len(data) - 4, len(data) - 7, b"abc")


def test_response_is_read_whole_and_204_ignores_its_length() -> None:
    data = b"HTTP/1.0 204 No Content\r\nContent-Length: 9\r\n\r\n"
    found = response(data, 0, MAX_HEAD)
    assert found is not None
    assert found[0] == len(data) and found[3] == 204 and found[4] == "1.0" and found[7] == b""


def test_repeated_headers_are_joined_like_the_incremental_path() -> None:
    data = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nVia: p\r\nVia: q\r\n"
    found = response(data + b"Content-Length: 0\r\n\r\n", 0, MAX_HEAD)
    assert found is not None
    assert found[5]["set-cookie"] == "a=1\nb=2" and found[5]["via"] == "p, q"


def test_what_is_left_to_the_incremental_parser() -> None:
    refused = [
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # head not complete
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",  # body not complete
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\n\r\n",  # unknown method
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
        b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nx",
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ]
    for data in refused:
        assert request(data, 0, MAX_HEAD) is None, data
    for data in (
        b"HTTP/1.1 200 OK\r\n\r\nuntil close",  # no length: ends at close
        b"HTTP/1.1 101 Switching\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",  # no reason separator
    ):
        assert response(data, 0, MAX_HEAD) is None, data
    big = b"GET / HTTP/1.1\r\nX: " + b"v" * MAX_HEAD + b"\r\n\r\n"
    assert request(big, 0, MAX_HEAD) is None


# --- the same exchanges either way --------------------------------------------------------

_TOKEN = st.text("abcXYZ-_!#0", min_size=1, max_size=8)
_NAMES = st.one_of(
    st.sampled_from(["Host", "Content-Type", "Connection", "Set-Cookie", "Accept", "ETag"]),
    _TOKEN,
    st.sampled_from(["Bad Name", "x\x01", "", "Content-Length", "Transfer-Encoding"]),
)
_VALUE_CHARS = st.sampled_from([*"ab;=, /", "\t", " ", "\xe9", "\x7f", "\x01", "\r", "\n"])
_VALUES = st.one_of(
    st.text(_VALUE_CHARS, max_size=10),
    st.sampled_from(["close", "keep-alive", "Keep-Alive", "chunked", "gzip", "12", "x"]),
)
_HEADERS = st.lists(st.tuples(_NAMES, _VALUES), max_size=6)
_LENGTH = st.sampled_from(["match", "none", "short", "long", "bad", "twice"])


def _head_lines(headers: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in headers)


def _framed(headers: list[tuple[str, str]], body: bytes, length: str) -> bytes:
    n = len(body)
    extra = {
        "match": [("Content-Length", str(n))],
        "none": [],
        "short": [("Content-Length", str(max(0, n - 1)))],
        "long": [("Content-Length", str(n + 3))],
        "bad": [("Content-Length", "1x")],
        "twice": [("Content-Length", str(n)), ("Content-Length", str(n))],
    }[length]
    return _head_lines([*headers, *extra]) + b"\r\n" + body


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, bytes]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "M-SEARCH", "BREW"]))
    target = draw(st.sampled_from(["/", "/a?b=c", "*", "/x y", "/\x7f", "/%20"]))
    version = draw(st.sampled_from(["1.1", "1.0"]))  # 2.0: sniffing decides on partial lines
    req_body = draw(st.binary(max_size=20))
    req = f"{method} {target} HTTP/{version}\r\n".encode("latin-1") + _framed(
        draw(_HEADERS), req_body, draw(_LENGTH)
    )
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500, 101, 100]))
    reason = draw(st.sampled_from(["OK", "", "Not Found", "x\ty"]))
    resp_version = draw(st.sampled_from(["1.1", "1.0"]))
    resp = f"HTTP/{resp_version} {status} {reason}\r\n".encode("latin-1") + _framed(
        draw(_HEADERS), draw(st.binary(max_size=20)), draw(_LENGTH)
    )
    return req, resp


def _outcome(events: list[tuple[int, bytes]]) -> list[Exchange] | str:
    d = Http1Dissector(LIMITS)
    out: list[Exchange] = []
    try:
        for i, (direction, data) in enumerate(events):
            out += d.feed(direction, data, float(i))
        out += d.close(99.0)
    except DissectError:
        return "error"
    return out


def _bytewise(events: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The same conversation one byte at a time: never whole, always the incremental parser."""
    return [(d, data[i : i + 1]) for d, data in events for i in range(len(data))]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=3))
def test_whole_and_incremental_reading_give_the_same_exchanges(
    pairs: list[tuple[bytes, bytes]],
) -> None:
    whole: list[tuple[int, bytes]] = []
    for req, resp in pairs:
        whole += [(CLIENT, req), (SERVER, resp)]
    slow = _outcome(_bytewise(whole))
    fast = _outcome(whole)
    assert (fast == "error") == (slow == "error"), (fast, slow)
    if isinstance(slow, str) or isinstance(fast, str):
        return
    # timestamps differ (one per byte in the slow run): compare everything else
    assert [_untimed(e) for e in fast] == [_untimed(e) for e in slow]


def test_pipelined_whole_messages_in_one_segment_match_the_incremental_path() -> None:
    req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    events = [(CLIENT, req * 3), (SERVER, resp * 3)]
    fast = _outcome(events)
    assert isinstance(fast, list) and len(fast) == 3
    slow = _outcome(_bytewise(events))
    assert isinstance(slow, list)
    assert [_untimed(e) for e in fast] == [_untimed(e) for e in slow]
    assert sum(e.request.size for e in fast if e.request) == len(req) * 3


def _untimed(e: Exchange) -> tuple[object, ...]:
    return (e.method, e.path, e.status, e.request, e.response, e.flags, e.upgrade)
