"""The story of an HTTP/1 connection: requests wait in line, responses take them in order."""

from __future__ import annotations

import base64
import gzip
import http.server
import itertools
import subprocess
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.http1 import Http1Dissector
from pilotfish.model import CLIENT, SERVER, Exchange
from tests.dissect.conftest import DATA_JSON, INDEX
from tests.dissect.recorder import Recorder

LIMITS = DissectLimits()

GET = b"GET /api/v1/cart?x=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
JSON_GZ = gzip.compress(b'{"items": [1, 2]}')
GZ_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    + f"{10:x}\r\n".encode()
    + JSON_GZ[:10]
    + b"\r\n"
    + f"{len(JSON_GZ) - 10:x}\r\n".encode()
    + JSON_GZ[10:]
    + b"\r\n0\r\n\r\n"
)
POST = b'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 7\r\n\r\n{"a":1}'
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

Event = tuple[int, bytes, float]


def run(events: list[Event], limits: DissectLimits = LIMITS, close: bool = True) -> list[Exchange]:
    d = Http1Dissector(limits)
    out: list[Exchange] = []
    for direction, data, ts in events:
        out += d.feed(direction, data, ts)
    if close:
        out += d.close(99.0)
    return out


def only(exchanges: list[Exchange]) -> Exchange:
    assert len(exchanges) == 1, exchanges
    return exchanges[0]


# --- normal traffic ---------------------------------------------------------------------


def test_simple_exchange_fields_and_sizes() -> None:
    ex = only(run([(CLIENT, GET, 1.0), (SERVER, OK, 1.5)]))
    assert (ex.protocol, ex.method, ex.path, ex.status) == ("http", "GET", "/api/v1/cart?x=1", 200)
    assert ex.summary == "GET /api/v1/cart?x=1 -> 200"
    assert (ex.request_ts, ex.response_ts) == (1.0, 1.5)
    assert ex.request is not None and ex.response is not None
    assert ex.request.size == len(GET)
    assert ex.response.size == len(OK)
    assert ex.request.headers == {"host": "shop", "accept": "*/*"}
    assert ex.response.body == "hello"
    assert ex.response.body_size == 5
    assert ex.response.version == "HTTP/1.1"
    assert ex.flags == []
    assert ex.upgrade is None


def test_keep_alive_pairs_in_order() -> None:
    out = run(
        [(CLIENT, GET, 1.0), (SERVER, OK, 1.1), (CLIENT, POST, 2.0), (SERVER, NOT_FOUND, 2.2)]
    )
    assert [(e.method, e.status, e.request_ts, e.response_ts) for e in out] == [
        ("GET", 200, 1.0, 1.1),
        ("POST", 404, 2.0, 2.2),
    ]
    assert out[1].request is not None and out[1].request.body == '{"a":1}'


def test_pipelined_requests_in_one_segment_pair_fifo() -> None:
    out = run([(CLIENT, GET + POST + GET, 1.0), (SERVER, OK + NOT_FOUND + OK, 2.0)])
    assert [(e.method, e.status) for e in out] == [("GET", 200), ("POST", 404), ("GET", 200)]
    assert [e.response.size for e in out if e.response] == [len(OK), len(NOT_FOUND), len(OK)]


def test_chunked_gzip_json_is_decoded_and_sized_on_the_wire() -> None:
    ex = only(run([(CLIENT, GET, 1.0), (SERVER, GZ_CHUNKED, 2.0)]))
    assert ex.response is not None
    assert ex.response.body == '{"items": [1, 2]}'
    assert ex.response.encoding == "text"
    assert ex.response.size == len(GZ_CHUNKED)
    assert ex.response.headers["content-encoding"] == "gzip"


def test_sizes_stay_exact_with_non_canonical_framing() -> None:
    req = b"GET /odd HTTP/1.1\r\nHost:   spaced  \r\nX-Tab:\tv\r\n\r\n"
    resp = (
        b"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n"  # no reason phrase
        b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"  # chunk extension, trailer
    )
    # one message per segment: each size is exact
    out = run([(CLIENT, req, 1.0), (SERVER, resp, 2.0), (CLIENT, req, 3.0), (SERVER, resp, 4.0)])
    assert [(e.request.size, e.response.size) for e in out if e.request and e.response] == [
        (len(req), len(resp)),
        (len(req), len(resp)),
    ]
    assert out[0].response is not None and out[0].response.headers["x-trailer"] == "t"
    # any segmentation: the sizes still add up to the bytes on the wire
    for cut in range(1, len(resp)):
        events = [
            (CLIENT, req + req, 1.0),
            (SERVER, resp[:cut], 2.0),
            (SERVER, resp[cut:] + resp, 3.0),
        ]
        out = run(events)
        assert sum(e.request.size for e in out if e.request) == 2 * len(req), cut
        assert sum(e.response.size for e in out if e.response) == 2 * len(resp), cut


def test_repeated_headers_are_joined_and_set_cookie_by_newline() -> None:
    resp = (
        b"HTTP/1.1 200 OK\r\nVary: a\r\nVary: b\r\nSet-Cookie: x=1\r\nSET-COOKIE: y=2\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    ex = only(run([(CLIENT, GET, 1.0), (SERVER, resp, 2.0)]))
    assert ex.response is not None
    assert ex.response.headers["vary"] == "a, b"
    assert ex.response.headers["set-cookie"] == "x=1\ny=2"


def test_binary_body_is_base64_and_big_body_truncated() -> None:
    body = bytes(range(256)) * 4
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1024\r\n\r\n" + body
    ex = only(run([(CLIENT, GET, 1.0), (SERVER, resp, 2.0)], DissectLimits(body_limit=100)))
    assert ex.response is not None
    assert ex.response.encoding == "base64"
    assert base64.b64decode(ex.response.body) == body[:100]
    assert ex.response.truncated and ex.response.body_size == 1024
    assert ex.response.size == len(resp)


def test_http10_request_and_response_until_close() -> None:
    req = b"GET / HTTP/1.0\r\n\r\n"
    resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>"
    d = Http1Dissector(LIMITS)
    assert d.feed(CLIENT, req, 1.0) == []
    assert d.feed(SERVER, resp, 2.0) == []  # no length: the body ends with the connection
    ex = only(d.close(3.0))
    assert ex.status == 200 and ex.flags == []
    assert ex.response is not None and ex.response.body == "<html>"
    assert ex.response.version == "HTTP/1.0" and ex.response.size == len(resp)


# --- bodiless and interim responses --------------------------------------------------------


def test_head_response_has_no_body_even_with_content_length() -> None:
    head = b"HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n"
    head_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 123456\r\n\r\n"
    out = run([(CLIENT, head + GET, 1.0), (SERVER, head_resp + OK, 2.0)])
    assert [(e.method, e.status) for e in out] == [("HEAD", 200), ("GET", 200)]
    assert out[0].response is not None and out[0].response.size == len(head_resp)
    assert out[1].response is not None and out[1].response.body == "hello"


def test_head_response_header_end_split_across_segments() -> None:
    head = b"HEAD / HTTP/1.1\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
    for cut in range(1, len(resp) + len(OK)):
        stream = resp + OK
        out = run(
            [(CLIENT, head + GET, 1.0), (SERVER, stream[:cut], 2.0), (SERVER, stream[cut:], 3.0)]
        )
        assert [(e.method, e.status) for e in out] == [("HEAD", 200), ("GET", 200)], cut


def test_204_and_304_have_no_body() -> None:
    r204 = b"HTTP/1.1 204 No Content\r\n\r\n"
    r304 = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
    out = run([(CLIENT, GET * 3, 1.0), (SERVER, r204 + r304 + OK, 2.0)])
    assert [e.status for e in out] == [204, 304, 200]


def test_100_continue_is_not_final_and_is_recorded() -> None:
    req = b"PUT /f HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    out = run(
        [
            (CLIENT, req, 1.0),
            (SERVER, b"HTTP/1.1 100 Continue\r\n\r\n", 2.0),
            (CLIENT, b"abc", 3.0),
            (SERVER, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 4.0),
        ]
    )
    ex = only(out)
    assert ex.status == 201 and ex.response_ts == 4.0
    assert ex.response is not None and ex.response.info == {"informational": [100]}
    assert ex.request is not None and ex.request.body == "abc"


def test_early_response_waits_for_its_request_to_complete() -> None:
    req = b"PUT /upload HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
    too_big = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"
    d = Http1Dissector(LIMITS)
    assert d.feed(CLIENT, req + b"01234", 1.0) == []
    assert d.feed(SERVER, too_big, 2.0) == []
    (ex,) = d.feed(CLIENT, b"56789" + GET, 3.0)
    assert (ex.method, ex.status, ex.request_ts, ex.response_ts) == ("PUT", 413, 1.0, 2.0)
    assert ex.flags == ["early-response"]
    assert ex.request is not None and ex.request.body == "0123456789"
    assert [e.status for e in d.feed(SERVER, OK, 4.0)] == [200]  # FIFO stays aligned


def test_early_response_and_connection_closed_mid_upload() -> None:
    req = b"POST /u HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"
    out = run([(CLIENT, req, 1.0), (SERVER, b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n", 2.0)])
    assert [(e.status, e.flags) for e in out] == [(401, ["truncated", "early-response"])]


# --- upgrades ---------------------------------------------------------------------------------


def test_websocket_upgrade_names_the_protocol_and_stops() -> None:
    req = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    d = Http1Dissector(LIMITS)
    assert d.feed(CLIENT, req + b"\x81\x85masked", 1.0) == []
    ex = only(d.feed(SERVER, resp + b"\x81\x02hi", 2.0))
    assert ex.upgrade == "websocket" and ex.status == 101
    assert d.feed(CLIENT, GET, 3.0) == [] and d.close(4.0) == []
    assert d.pending_since() is None


def test_h2c_upgrade() -> None:
    req = b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    assert only(run([(CLIENT, req, 1.0), (SERVER, resp, 2.0)])).upgrade == "h2c"


def test_refused_upgrade_releases_the_held_client_bytes() -> None:
    req = b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    out = run([(CLIENT, req + GET, 1.0), (SERVER, OK + OK, 2.0)])
    assert [(e.path, e.status, e.upgrade) for e in out] == [
        ("/", 200, None),
        ("/api/v1/cart?x=1", 200, None),
    ]


def test_connect_2xx_becomes_a_tunnel() -> None:
    req = b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"
    resp = b"HTTP/1.1 200 Connection established\r\n\r\n"
    ex = only(run([(CLIENT, req + b"\x16\x03\x01", 1.0), (SERVER, resp + b"\x16\x03\x03", 2.0)]))
    assert (ex.method, ex.path, ex.status, ex.upgrade) == ("CONNECT", "db:5432", 200, "tunnel")


# --- mid-stream, gaps, close ----------------------------------------------------------------


def test_mid_stream_pickup_resyncs_and_marks_no_request() -> None:
    out = run(
        [
            (CLIENT, b'ody", "rest": 1}', 1.0),
            (SERVER, b"of an older body\r\n" + NOT_FOUND, 1.5),
            (CLIENT, GET, 2.0),
            (SERVER, OK, 2.5),
        ]
    )
    assert [(e.method, e.status, e.flags) for e in out] == [
        ("", 404, ["no-request"]),
        ("GET", 200, []),
    ]
    assert out[0].request is None and out[0].request_ts is None


def test_gap_inside_a_known_length_body_keeps_framing() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    d = Http1Dissector(LIMITS)
    d.feed(CLIENT, GET + GET, 1.0)
    assert d.feed(SERVER, resp + b"abc", 2.0) == []
    assert d.gap(SERVER, 4, 2.1) == []
    first, second = d.feed(SERVER, b"xyz" + OK, 2.2)
    assert first.flags == ["gap"] and first.response is not None
    assert first.response.size == len(resp) + 10
    assert first.response.body_size == 6  # only the bytes actually seen were decoded
    assert second.flags == [] and second.response is not None
    assert second.response.body == "hello"


def test_gap_beyond_the_body_resyncs_at_next_status_line() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    d = Http1Dissector(LIMITS)
    d.feed(CLIENT, GET + GET + GET, 1.0)
    d.feed(SERVER, resp + b"ab", 2.0)
    out = d.gap(SERVER, 30, 2.1)  # the body end and the start of the next response are lost
    assert [(e.status, e.flags) for e in out] == [(200, ["gap"])]
    out = d.feed(SERVER, b"Length: 0\r\n\r\n" + NOT_FOUND, 2.2)
    # FIFO: the lost response answered the second GET, the 404 goes to the third
    assert [(e.status, e.flags) for e in out] == [(404, [])]


def test_gap_in_chunked_body_ends_the_message_with_gap() -> None:
    d = Http1Dissector(LIMITS)
    d.feed(CLIENT, GET + GET, 1.0)
    d.feed(SERVER, GZ_CHUNKED[:90], 2.0)
    out = d.gap(SERVER, 100, 2.1)
    assert [(e.status, e.flags) for e in out] == [(200, ["gap"])]
    assert [e.status for e in d.feed(SERVER, b"junk\r\n" + OK, 2.2)] == [200]


def test_gap_in_request_headers_keeps_the_request_in_line() -> None:
    d = Http1Dissector(LIMITS)
    d.feed(CLIENT, GET[:20], 1.0)
    assert d.gap(CLIENT, 10, 1.1) == []
    d.feed(CLIENT, b"ept: */*\r\n\r\n" + POST, 1.2)
    out = d.feed(SERVER, OK + NOT_FOUND, 2.0)
    assert [(e.method, e.status, e.flags) for e in out] == [
        ("GET", 200, ["gap"]),
        ("POST", 404, []),
    ]


def test_close_flushes_unanswered_requests() -> None:
    out = run([(CLIENT, GET + POST, 1.0), (SERVER, OK, 2.0)])
    assert [(e.method, e.status, e.flags) for e in out] == [
        ("GET", 200, []),
        ("POST", None, ["no-response"]),
    ]
    assert out[1].response is None and out[1].response_ts is None and out[1].request_ts == 1.0


def test_close_mid_response_marks_truncated() -> None:
    out = run([(CLIENT, GET, 1.0), (SERVER, OK[:-2], 2.0)])
    ex = only(out)
    assert ex.flags == ["truncated"] and ex.response is not None
    assert ex.response.body == "hel"


def test_pending_since_follows_the_oldest_waiting_message() -> None:
    d = Http1Dissector(LIMITS)
    assert d.pending_since() is None
    d.feed(CLIENT, GET[:10], 1.0)
    assert d.pending_since() == 1.0
    d.feed(CLIENT, GET[10:] + POST, 2.0)
    assert d.pending_since() == 1.0
    d.feed(SERVER, OK, 3.0)
    assert d.pending_since() == 2.0


# --- bounds and malformed input ----------------------------------------------------------------


def test_header_block_over_the_limit_raises() -> None:
    big = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    with pytest.raises(DissectError):
        run([(CLIENT, big, 1.0)], DissectLimits(max_header_bytes=1024))


def test_endless_header_block_over_many_segments_raises() -> None:
    d = Http1Dissector(DissectLimits(max_header_bytes=1024))
    d.feed(CLIENT, b"GET / HTTP/1.1\r\nX-A: ", 1.0)
    with pytest.raises(DissectError):
        for _ in range(100):
            d.feed(CLIENT, b"b" * 100, 1.0)


def test_too_many_waiting_requests_flush_the_oldest() -> None:
    out = run([(CLIENT, GET * 5, 1.0)], DissectLimits(max_pending_messages=3), close=False)
    assert [e.flags for e in out] == [["no-response"], ["no-response"]]


def test_garbage_after_a_good_message_raises() -> None:
    with pytest.raises(DissectError):
        run([(CLIENT, GET + b"\x00\x01\x02 garbage\r\n\r\n", 1.0)])


def test_unsyncable_stream_gives_up() -> None:
    with pytest.raises(DissectError):
        run([(CLIENT, b"\x00" * 400_000, 1.0)])


# --- properties -------------------------------------------------------------------------------

CONVERSATION: list[Event] = [
    (CLIENT, GET + POST, 1.0),
    (SERVER, OK + NOT_FOUND, 2.0),
    (CLIENT, b"HEAD /h HTTP/1.1\r\n\r\n" + GET, 3.0),
    (SERVER, b"HTTP/1.1 200 OK\r\nContent-Length: 77\r\n\r\n" + GZ_CHUNKED, 4.0),
]


def _split(events: list[Event], cuts: list[list[int]]) -> list[Event]:
    out: list[Event] = []
    for (direction, data, ts), points in zip(events, cuts, strict=True):
        edges = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
        out += [(direction, data[a:b], ts) for a, b in itertools.pairwise(edges) if b > a]
    return out


def test_every_single_split_point_gives_the_same_exchanges() -> None:
    expected = run(CONVERSATION)
    assert len(expected) == 4
    for i, (direction, data, ts) in enumerate(CONVERSATION):
        for cut in range(1, len(data)):
            events = [
                *CONVERSATION[:i],
                (direction, data[:cut], ts),
                (direction, data[cut:], ts),
                *CONVERSATION[i + 1 :],
            ]
            assert run(events) == expected, (i, cut)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.lists(st.lists(st.integers(0, 400), max_size=12), min_size=4, max_size=4))
def test_any_segmentation_gives_the_same_exchanges(cuts: list[list[int]]) -> None:
    out = run(_split(CONVERSATION, cuts))
    assert out == run(CONVERSATION)
    wire = [sum(len(d) for dr, d, _ in CONVERSATION if dr == side) for side in (CLIENT, SERVER)]
    assert sum(e.request.size for e in out if e.request) == wire[CLIENT]
    assert sum(e.response.size for e in out if e.response) == wire[SERVER]


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.sampled_from([CLIENT, SERVER]), st.binary(max_size=200)), max_size=8),
    st.lists(st.tuples(st.sampled_from([CLIENT, SERVER]), st.integers(1, 100)), max_size=2),
)
def test_garbage_only_ever_raises_dissect_error(
    chunks: list[tuple[int, bytes]], gaps: list[tuple[int, int]]
) -> None:
    d = Http1Dissector(DissectLimits(max_header_bytes=512))
    try:
        for direction, data in chunks:
            d.feed(direction, data, 1.0)
        for direction, size in gaps:
            d.gap(direction, size, 1.0)
        d.close(2.0)
    except DissectError:
        pass


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([CLIENT, SERVER]),
            st.sampled_from(
                [GET, POST, OK, NOT_FOUND, GZ_CHUNKED, b"HTTP/1.1 100 Continue\r\n\r\n", b"xx\r\n"]
            ),
        ),
        max_size=10,
    ),
    st.integers(0, 3),
)
def test_shuffled_messages_and_gaps_never_crash(
    chunks: list[tuple[int, bytes]], gap_at: int
) -> None:
    d = Http1Dissector(LIMITS)
    try:
        for i, (direction, data) in enumerate(chunks):
            if i == gap_at:
                d.gap(direction, 7, 1.0)
            for ex in d.feed(direction, data, 1.0):
                assert ex.protocol == "http"
        d.close(2.0)
    except DissectError:
        pass


# --- real traffic (nginx, curl, a chunked+gzip Python server) -------------------------------


def _curl(*args: str) -> None:
    subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "--http1.1", "--max-time", "10", *args],
        check=True,
        timeout=20,
    )


def _totals(events: list[Event]) -> tuple[int, int]:
    return (
        sum(len(d) for dr, d, _ in events if dr == CLIENT),
        sum(len(d) for dr, d, _ in events if dr == SERVER),
    )


@pytest.mark.integration
def test_real_nginx_keep_alive_gzip_head_and_post(nginx: int) -> None:
    recorder = Recorder(nginx)
    base = f"http://127.0.0.1:{recorder.port}"
    with recorder.running():
        _curl("--compressed", f"{base}/index.html", f"{base}/data.json", f"{base}/missing")
        _curl("-I", f"{base}/data.json")
        _curl("-d", "name=pilotfish&x=1", f"{base}/echo")
    first, head, post = recorder.connections
    out = run(first)
    assert [(e.method, e.path, e.status, e.flags) for e in out] == [
        ("GET", "/index.html", 200, []),
        ("GET", "/data.json", 200, []),
        ("GET", "/missing", 404, []),
    ]
    assert out[0].response is not None and out[0].response.body == INDEX.decode()
    data = out[1].response
    assert data is not None and data.headers["content-encoding"] == "gzip"
    assert data.body == DATA_JSON.decode() and data.body_size == len(DATA_JSON)
    # nginx frames canonically, so the rebuilt sizes add up to the bytes on the wire
    assert (
        sum(e.request.size for e in out if e.request),
        sum(e.response.size for e in out if e.response),
    ) == _totals(first)
    assert all(e.request_ts is not None and e.response_ts is not None for e in out)
    assert all(e.response_ts >= e.request_ts for e in out)  # type: ignore[operator]

    (h,) = run(head)
    assert (h.method, h.status) == ("HEAD", 200)
    assert h.response is not None and h.response.body == "" and h.response.headers["content-length"]

    (p,) = run(post)
    assert (p.method, p.path, p.status) == ("POST", "/echo", 201)
    assert p.request is not None and p.request.body == "name=pilotfish&x=1"
    assert p.response is not None and p.response.body == "created\n"


class _ChunkedGzipHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        packed = gzip.compress(b"line of text\n" * 500)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(packed), 100):
            piece = packed[i : i + 100]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.integration
def test_real_python_server_chunked_gzip() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChunkedGzipHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        recorder = Recorder(server.server_address[1])
        with recorder.running():
            _curl(f"http://127.0.0.1:{recorder.port}/a", f"http://127.0.0.1:{recorder.port}/b")
    finally:
        server.shutdown()
        server.server_close()
    (events,) = recorder.connections
    out = run(events)
    assert [e.path for e in out] == ["/a", "/b"]
    for ex in out:
        assert ex.response is not None
        assert ex.response.body == "line of text\n" * 500
        assert ex.response.headers["transfer-encoding"] == "chunked"
    assert sum(e.response.size for e in out if e.response) == _totals(events)[1]
    # and byte by byte it is the same
    one_by_one = [(dr, d[i : i + 1], ts) for dr, d, ts in events for i in range(len(d))]
    assert run(one_by_one) == out


def test_byte_by_byte_junk_is_scanned_in_linear_time() -> None:
    # 1-byte segments of one long line: each segment must not rescan what came before
    d = Http1Dissector(LIMITS)
    for _ in range(60_000):
        d.feed(CLIENT, b"x", 1.0)
        d.feed(SERVER, b"y", 1.0)
    d.feed(CLIENT, b"\r\n" + GET, 2.0)
    out = d.feed(SERVER, b"\r\n" + OK, 2.0)
    assert [(e.method, e.status) for e in out] == [("GET", 200)]


def test_gap_where_the_answer_starts_marks_the_waiting_request() -> None:
    """The status line fell into the hole: the request ends up unanswered but marked."""
    d = Http1Dissector(DissectLimits())
    assert d.feed(CLIENT, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 1.0) == []
    assert d.gap(SERVER, 1448, 1.1) == []
    assert d.feed(SERVER, b"x" * 500, 1.2) == []  # rest of a body: nothing to sync on
    (ex,) = d.close(2.0)
    assert (ex.method, ex.path, ex.status) == ("GET", "/big", None)
    assert ex.flags == ["gap", "no-response"]


def test_gap_between_answers_marks_only_the_next_one() -> None:
    d = Http1Dissector(DissectLimits())
    d.feed(CLIENT, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1.0)
    (first,) = d.feed(SERVER, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1.1)
    assert first.flags == []
    d.gap(SERVER, 10, 1.2)
    (second,) = d.feed(SERVER, b"HTTP/1.1 204 No Content\r\n\r\n", 1.3)
    assert (second.path, second.status, second.flags) == ("/b", 204, ["gap"])


def test_common_and_unusual_header_spellings_give_the_same_keys() -> None:
    resp = (
        b"HTTP/1.1 200 OK\r\nCONTENT-TYPE: text/plain\r\nx-Trace: 1\r\nDate: now\r\n"
        b"content-length: 2\r\nHoSt: h\r\n\r\nok"
    )
    ex = only(run([(CLIENT, GET, 1.0), (SERVER, resp, 2.0)]))
    assert ex.response is not None
    assert ex.response.headers == {
        "content-type": "text/plain",
        "x-trace": "1",
        "date": "now",
        "content-length": "2",
        "host": "h",
    }
    assert ex.response.body == "ok" and ex.response.size == len(resp)


_NAMES = st.one_of(
    st.sampled_from(["Host", "host", "HOST", "Content-Type", "ETag", "etag", "Set-Cookie"]),
    st.text("abcXYZ-_0123456789!#$%&'*+.^`|~", min_size=1, max_size=12),
)
_VALUES = st.text(  # visible ASCII and obs-text; DEL and controls are refused by the parser
    st.one_of(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E),
        st.characters(min_codepoint=0x80, max_codepoint=0xFF),
    ),
    max_size=20,
)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=12))
def test_property_header_dict_matches_a_plain_reference(pairs: list[tuple[str, str]]) -> None:
    """Lower-cased names, repeats joined (Set-Cookie by newline), sizes adding up to the wire."""
    block = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in pairs)
    resp = b"HTTP/1.1 204 No Content\r\n" + block + b"\r\n"
    expected: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in expected:
            value = expected[key] + ("\n" if key == "set-cookie" else ", ") + value
        expected[key] = value
    if any(k in ("content-length", "transfer-encoding", "upgrade") for k in expected):
        return  # framing headers change the message itself
    ex = only(run([(CLIENT, GET, 1.0), (SERVER, resp, 2.0)]))
    assert ex.response is not None
    assert ex.response.headers == expected
    assert ex.response.size == len(resp)
