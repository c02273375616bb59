"""The story of a new flow: the registry listens to its first bytes and picks who parses it."""

from __future__ import annotations

import struct
import subprocess

import pytest
from dnslib import DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.httpstart import NO, YES
from pilotfish.dissect.registry import BUILTIN, SNIFF_BYTES, Registration, Registry
from pilotfish.model import CLIENT, IPPROTO_TCP, IPPROTO_UDP, SERVER, Exchange
from tests.dissect.recorder import Recorder

LIMITS = DissectLimits()
GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
Q = bytes(DNSRecord.question("svc.local").pack())
R = bytes(DNSRecord.parse(Q).reply().pack())


def drive(d, events: list[tuple[int, bytes, float]], close: bool = True) -> list[Exchange]:
    out: list[Exchange] = []
    for direction, data, ts in events:
        out += d.feed(direction, data, ts)
    if close:
        out += d.close(9.0)
    return out


def test_names_and_by_name() -> None:
    reg = Registry(LIMITS)
    assert reg.names() == ["dns", "http", "tcp", "udp"]
    assert reg.by_name("http") is not None and reg.by_name("http").protocol == "http"
    assert reg.by_name("websocket") is None
    assert reg.fallback(IPPROTO_UDP).protocol == "udp"
    assert reg.fallback(IPPROTO_TCP).protocol == "tcp"


def test_http_on_an_unhinted_port_is_found_by_content() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 7777)
    assert d.pending_since() is None
    assert d.feed(CLIENT, GET[:3], 1.0) == []  # "GET" alone: not sure yet
    assert d.pending_since() == 1.0
    assert getattr(d, "chosen", "no attribute") is None  # still undecided
    out = drive(d, [(CLIENT, GET[3:], 1.1), (SERVER, OK, 2.0)])
    assert d.protocol == "http"
    assert getattr(d, "chosen", None) is not None and d.chosen.protocol == "http"  # type: ignore[attr-defined]
    assert [(e.protocol, e.method, e.status, e.request_ts) for e in out] == [
        ("http", "GET", 200, 1.0)
    ]


def test_port_80_with_tls_bytes_falls_back_to_tcp() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 80)
    out = drive(d, [(CLIENT, b"\x16\x03\x01\x00\xa5\x01\x00", 1.0), (SERVER, b"\x16\x03\x03", 2.0)])
    assert d.protocol == "tcp"
    assert [(e.protocol, e.summary) for e in out] == [("tcp", "tcp 7 B -> 3 B")]


def test_http2_preface_is_not_taken_by_http1() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 8080)
    drive(d, [(CLIENT, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1.0)], close=False)
    assert d.protocol == "tcp"


def test_mid_stream_http_response_is_recognised() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 8080)
    out = drive(d, [(SERVER, OK, 1.0), (CLIENT, GET, 2.0), (SERVER, OK, 3.0)])
    assert [(e.method, e.flags) for e in out] == [("", ["no-request"]), ("GET", [])]


def test_udp_dns_on_53_and_other_udp() -> None:
    reg = Registry(LIMITS)
    dns = reg.dissector_for(IPPROTO_UDP, 5353, 53)
    out = drive(dns, [(CLIENT, Q, 1.0), (SERVER, R, 1.01)])
    assert [(e.protocol, e.path, e.status) for e in out] == [("dns", "svc.local", "NOERROR")]
    other = reg.dissector_for(IPPROTO_UDP, 5000, 53)
    assert [e.protocol for e in drive(other, [(CLIENT, b"\x00" * 30, 1.0)])] == ["udp"]


def test_dns_over_tcp_split_length_prefix() -> None:
    framed = struct.pack("!H", len(Q)) + Q
    reply = struct.pack("!H", len(R)) + R
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 53)
    out = drive(d, [(CLIENT, framed[:1], 1.0), (CLIENT, framed[1:], 1.1), (SERVER, reply, 2.0)])
    assert d.protocol == "dns"
    assert [(e.path, e.request_ts) for e in out] == [("svc.local", 1.0)]


def test_gap_while_sniffing_forces_a_choice_and_is_replayed() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 9999)
    d.feed(CLIENT, b"\x01\x02", 1.0)
    d.gap(CLIENT, 10, 1.1)
    (ex,) = d.close(2.0)
    assert ex.protocol == "tcp" and ex.flags == ["gap", "no-response"]
    assert ex.request is not None and ex.request.size == 12


def test_server_first_protocol_waits_then_falls_back_when_both_sides_talked_enough() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 25)
    d.feed(SERVER, b"220 mail.example ESMTP ready\r\n" * 3, 1.0)
    assert d.protocol == "tcp"  # nothing can claim "220 ..." from the server


def test_hold_is_bounded() -> None:
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 40000, 9999)
    d.feed(CLIENT, b"GE", 1.0)  # could still become "GET ": undecided
    d.feed(SERVER, b"\x00" * 1000, 1.1)
    assert d.protocol == "tcp" and d.pending_since() == 1.0  # still holding
    d.feed(SERVER, b"\x00" * 70_000, 1.2)  # more than HOLD_BYTES: forced, nobody said yes
    assert d.protocol == "tcp" and d.pending_since() is not None


def test_one_line_registration_of_a_new_protocol() -> None:
    def sniff_ping(client: bytes, server: bytes, hinted: bool) -> int:
        return YES if client.startswith(b"PING") else NO

    class Ping:
        protocol = "ping"

        def __init__(self, limits: DissectLimits) -> None:
            self.seen = 0

        def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
            return [Exchange("ping", ts, None, summary=data.decode())]

        def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
            raise DissectError("no")

        def close(self, ts: float) -> list[Exchange]:
            return []

        def pending_since(self) -> float | None:
            return None

    reg = Registry(
        LIMITS, (*BUILTIN, Registration("ping", IPPROTO_TCP, frozenset({7}), sniff_ping, Ping))
    )
    assert "ping" in reg.names()
    d = reg.dissector_for(IPPROTO_TCP, 40000, 7)
    assert [e.summary for e in drive(d, [(CLIENT, b"PING", 1.0)])] == ["PING"]


@given(
    st.lists(st.tuples(st.sampled_from([CLIENT, SERVER]), st.binary(max_size=90)), max_size=6),
    st.sampled_from([IPPROTO_TCP, IPPROTO_UDP]),
    st.sampled_from([53, 80, 9999]),
)
def test_any_first_bytes_pick_something_and_never_crash(
    chunks: list[tuple[int, bytes]], proto: int, port: int
) -> None:
    d = Registry(LIMITS).dissector_for(proto, 40000, port)
    try:
        drive(d, [(direction, data, 1.0) for direction, data in chunks])
    except DissectError:
        return
    assert d.protocol in ("http", "dns", "tcp", "udp")
    assert d.pending_since() is None or sum(len(c[1]) for c in chunks) < SNIFF_BYTES * 100


@pytest.mark.integration
def test_real_nginx_stream_on_an_unhinted_port_is_http(nginx: int) -> None:
    recorder = Recorder(nginx)
    with recorder.running():
        subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "10",
                f"http://127.0.0.1:{recorder.port}/",
            ],
            check=True,
            timeout=20,
        )
    (events,) = recorder.connections
    d = Registry(LIMITS).dissector_for(IPPROTO_TCP, 50000, nginx)
    (ex,) = drive(d, events)
    assert (ex.protocol, ex.method, ex.path, ex.status) == ("http", "GET", "/", 200)
