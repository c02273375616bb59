"""The story of spotting DNS without parsing it."""

from __future__ import annotations

import struct

from dnslib import DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.dissect.dnssniff import message_verdict, sniff_tcp, sniff_udp
from pilotfish.dissect.httpstart import MAYBE, NO, YES

Q = bytes(DNSRecord.question("api.example.com", "AAAA").pack())


def test_real_query_is_dns_on_any_port() -> None:
    assert sniff_udp(Q, b"", False) == YES
    assert sniff_udp(b"", bytes(DNSRecord.parse(Q).reply().pack()), False) == YES


def test_other_udp_payloads_are_not() -> None:
    assert sniff_udp(b"\x00" * 40, b"", True) == NO
    assert sniff_udp(b"hello world, not dns", b"", True) == NO
    assert sniff_udp(Q[:14], b"", True) == NO  # question cut short


def test_tcp_needs_length_prefix_and_header() -> None:
    framed = struct.pack("!H", len(Q)) + Q
    assert sniff_tcp(framed, b"", False) == YES
    assert sniff_tcp(framed[:1], b"", False) == MAYBE
    assert sniff_tcp(framed[:8], b"", False) == MAYBE
    assert sniff_tcp(b"GET / HTTP/1.1\r\n", b"", True) == NO


def test_long_name_beyond_the_sniffed_bytes() -> None:
    long_q = bytes(DNSRecord.question("a" * 60 + ".example.com").pack())
    framed = (struct.pack("!H", len(long_q)) + long_q)[:64]
    assert sniff_tcp(framed, b"", True) == YES
    assert sniff_tcp(framed, b"", False) == MAYBE


def test_mdns_announcement_without_questions_only_on_hinted_port() -> None:
    header = struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + b"\x00\x00\x01\x00\x01" + bytes(10)
    assert message_verdict(header, hinted=True, complete=True) == YES
    assert message_verdict(header, hinted=False, complete=True) == NO


@given(st.binary(max_size=80), st.booleans())
def test_verdicts_are_total(data: bytes, hinted: bool) -> None:
    assert sniff_udp(data, b"", hinted) in (YES, NO)
    assert sniff_tcp(data, b"", hinted) in (YES, NO, MAYBE)
