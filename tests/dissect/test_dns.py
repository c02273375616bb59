"""The story of DNS in a flow: queries wait by id, answers complete them, junk is counted."""

from __future__ import annotations

import socket
import struct
import subprocess

import pytest
from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.dns import DnsDissector
from pilotfish.model import CLIENT, SERVER
from tests.dissect.recorder import Recorder

LIMITS = DissectLimits()


def query(name: str = "cart.shop.svc.cluster.local", qtype: str = "A", ident: int = 7) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = ident
    return bytes(record.pack())


def answer(q: bytes, *rrs: RR, rcode: int = RCODE.NOERROR) -> bytes:
    reply = DNSRecord.parse(q).reply()
    reply.header.rcode = rcode
    for rr in rrs:
        reply.add_answer(rr)
    return bytes(reply.pack())


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


Q = query()
R = answer(Q, RR("cart.shop.svc.cluster.local", QTYPE.A, rdata=A("10.0.0.7"), ttl=30))


def test_udp_query_and_answer_pair() -> None:
    d = DnsDissector(LIMITS)
    assert d.feed(CLIENT, Q, 1.0) == []
    assert d.pending_since() == 1.0
    (ex,) = d.feed(SERVER, R, 1.25)
    assert (ex.protocol, ex.method, ex.path, ex.status) == (
        "dns",
        "A",
        "cart.shop.svc.cluster.local",
        "NOERROR",
    )
    assert ex.summary == "A cart.shop.svc.cluster.local -> NOERROR"
    assert (ex.request_ts, ex.response_ts) == (1.0, 1.25)
    assert ex.request is not None and ex.response is not None
    assert ex.request.size == len(Q) and ex.response.size == len(R)
    assert ex.request.questions == [
        {"name": "cart.shop.svc.cluster.local", "type": "A", "class": "IN"}
    ]
    assert ex.response.answers == [
        {"name": "cart.shop.svc.cluster.local", "type": "A", "ttl": 30, "data": "10.0.0.7"}
    ]
    assert d.pending_since() is None


def test_nxdomain_and_authority_records() -> None:
    q = query("nope.example", "AAAA", ident=9)
    reply = DNSRecord.parse(q).reply()
    reply.header.rcode = RCODE.NXDOMAIN
    reply.add_auth(RR("example", QTYPE.MX, rdata=MX("mail.example"), ttl=5))
    d = DnsDissector(LIMITS)
    d.feed(CLIENT, q, 1.0)
    (ex,) = d.feed(SERVER, bytes(reply.pack()), 2.0)
    assert (ex.method, ex.path, ex.status) == ("AAAA", "nope.example", "NXDOMAIN")
    assert ex.response is not None and ex.response.answers == []
    assert ex.response.info == {
        "authority": [{"name": "example", "type": "MX", "ttl": 5, "data": "10 mail.example."}]
    }


def test_pairing_is_by_id_not_order() -> None:
    q1, q2 = query("a.test", ident=1), query("b.test", "AAAA", ident=2)
    r2 = answer(q2, RR("b.test", QTYPE.AAAA, rdata=AAAA("::1")))
    r1 = answer(q1)
    d = DnsDissector(LIMITS)
    d.feed(CLIENT, q1, 1.0)
    d.feed(CLIENT, q2, 1.1)
    assert [e.path for e in d.feed(SERVER, r2, 2.0)] == ["b.test"]
    assert [e.path for e in d.feed(SERVER, r1, 2.1)] == ["a.test"]


def test_answer_without_query_is_no_request() -> None:
    (ex,) = DnsDissector(LIMITS).feed(SERVER, R, 5.0)
    assert ex.flags == ["no-request"] and ex.request is None and ex.request_ts is None
    assert ex.path == "cart.shop.svc.cluster.local"


def test_unanswered_query_is_flushed_by_close() -> None:
    d = DnsDissector(LIMITS)
    d.feed(CLIENT, Q, 1.0)
    (ex,) = d.close(30.0)
    assert ex.flags == ["no-response"] and ex.response is None and ex.response_ts is None
    assert d.close(31.0) == []


def test_retransmitted_query_is_counted_once() -> None:
    d = DnsDissector(LIMITS)
    d.feed(CLIENT, Q, 1.0)
    d.feed(CLIENT, Q, 2.0)
    (ex,) = d.feed(SERVER, R, 2.5)
    assert ex.request_ts == 1.0
    assert ex.request is not None and ex.request.info == {"retransmits": 1}


def test_too_many_waiting_queries_flush_the_oldest() -> None:
    d = DnsDissector(DissectLimits(max_pending_messages=2))
    out = []
    for i in range(4):
        out += d.feed(CLIENT, query(ident=i), float(i))
    assert [(e.request_ts, e.flags) for e in out] == [
        (0.0, ["no-response"]),
        (1.0, ["no-response"]),
    ]


def test_malformed_udp_datagram_is_skipped_and_counted() -> None:
    d = DnsDissector(LIMITS)
    d.feed(CLIENT, Q, 1.0)
    assert d.feed(SERVER, R[:15], 1.1) == []
    assert d.malformed == 1
    assert len(d.feed(SERVER, R, 1.2)) == 1


def test_udp_conversation_of_only_junk_gives_up() -> None:
    d = DnsDissector(LIMITS)
    with pytest.raises(DissectError):
        for _ in range(8):
            d.feed(CLIENT, b"\x00" * 5, 1.0)


def test_tcp_framing_several_messages_per_segment_and_split_messages() -> None:
    q2 = query("b.test", ident=8)
    stream = framed(Q) + framed(q2)
    replies = framed(R) + framed(answer(q2))
    d = DnsDissector(LIMITS, tcp=True)
    assert d.feed(CLIENT, stream, 1.0) == []
    out = []
    for i in range(len(replies)):
        out += d.feed(SERVER, replies[i : i + 1], 2.0 + i)
    assert [e.path for e in out] == ["cart.shop.svc.cluster.local", "b.test"]
    assert out[0].request is not None and out[0].request.size == len(Q) + 2


def test_tcp_malformed_message_and_gap_raise() -> None:
    d = DnsDissector(LIMITS, tcp=True)
    with pytest.raises(DissectError):
        d.feed(CLIENT, framed(b"\xff" * 20), 1.0)
    with pytest.raises(DissectError):
        DnsDissector(LIMITS, tcp=True).feed(CLIENT, b"\x00\x03abc", 1.0)
    with pytest.raises(DissectError):
        DnsDissector(LIMITS, tcp=True).gap(CLIENT, 10, 1.0)


@given(st.binary(max_size=120))
def test_udp_garbage_never_raises_anything_but_dissect_error(data: bytes) -> None:
    d = DnsDissector(LIMITS)
    try:
        d.feed(CLIENT, data, 1.0)
        d.feed(SERVER, data, 1.0)
        d.close(2.0)
    except DissectError:
        pass


@settings(max_examples=200)
@given(st.binary(max_size=120), st.integers(0, len(R) - 1), st.integers(0, 255))
def test_mutated_answers_never_crash(prefix: bytes, pos: int, value: int) -> None:
    mutated = bytearray(R)
    mutated[pos] = value
    for tcp in (False, True):
        d = DnsDissector(LIMITS, tcp=tcp)
        try:
            d.feed(SERVER, framed(bytes(mutated)) if tcp else bytes(mutated), 1.0)
            d.feed(CLIENT, prefix, 1.0)
        except DissectError:
            pass


@given(st.lists(st.integers(1, 40), max_size=10))
def test_tcp_any_segmentation_gives_the_same_exchanges(steps: list[int]) -> None:
    stream = framed(R) + framed(answer(query("x.test", ident=3)))
    d = DnsDissector(LIMITS, tcp=True)
    out, pos = [], 0
    for step in [*steps, len(stream)]:
        out += d.feed(SERVER, stream[pos : pos + step], 1.0)
        pos += step
    assert [e.path for e in out] == ["cart.shop.svc.cluster.local", "x.test"]


# --- real traffic (dnsmasq, dig) ---------------------------------------------------------------


@pytest.mark.integration
def test_real_dnsmasq_over_udp(dnsmasq: int) -> None:
    d = DnsDissector(LIMITS)
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for ident, (name, qtype) in enumerate([("svc.test", "A"), ("gone.test", "A")], 1):
            q = query(name, qtype, ident)
            sock.sendto(q, ("127.0.0.1", dnsmasq))
            out += d.feed(CLIENT, q, float(ident))
            reply, _ = sock.recvfrom(4096)
            out += d.feed(SERVER, reply, ident + 0.5)
    assert [(e.method, e.path, e.status) for e in out] == [
        ("A", "svc.test", "NOERROR"),
        ("A", "gone.test", "NXDOMAIN"),
    ]
    assert out[0].response is not None and out[0].response.answers is not None
    assert out[0].response.answers[0]["data"] == "10.1.2.3"


@pytest.mark.integration
def test_real_dig_over_tcp(dnsmasq: int) -> None:
    recorder = Recorder(dnsmasq)
    with recorder.running():
        subprocess.run(
            [
                "dig",
                "+tcp",
                "+tries=1",
                "+time=3",
                "@127.0.0.1",
                "-p",
                str(recorder.port),
                "svc.test",
                "A",
            ],
            check=True,
            capture_output=True,
            timeout=20,
        )
    (events,) = recorder.connections
    d = DnsDissector(LIMITS, tcp=True)
    out = [ex for direction, data, ts in events for ex in d.feed(direction, data, ts)]
    out += d.close(99.0)
    (ex,) = out
    assert (ex.method, ex.path, ex.status, ex.flags) == ("A", "svc.test", "NOERROR", [])
    assert ex.request is not None and ex.response is not None
    assert ex.request.size == sum(len(b) for dr, b, _ in events if dr == CLIENT)
    assert ex.response.size == sum(len(b) for dr, b, _ in events if dr == SERVER)
