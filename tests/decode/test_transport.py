"""TCP/UDP headers become L4Packet tuples; bad offsets and lengths are counted, not raised."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.decode import transport
from pilotfish.decode.stats import DecodeStats

from .frames import DST4, SRC4, tcp, udp


def test_tcp_fields_and_payload() -> None:
    seg = tcp(1234, 80, b"GET / HTTP/1.1\r\n", seq=0xFFFFFFFF, ack=7, flags=0x18)
    pkt = transport.tcp(DecodeStats(), SRC4, DST4, seg, 0, len(seg))
    assert pkt == (6, SRC4, 1234, DST4, 80, 0xFFFFFFFF, 7, 0x18, b"GET / HTTP/1.1\r\n")


def test_tcp_options_are_skipped() -> None:
    seg = tcp(payload=b"data", options=b"\x01\x01\x08\x0a" + bytes(8))
    pkt = transport.tcp(DecodeStats(), SRC4, DST4, seg, 0, len(seg))
    assert pkt is not None and pkt[8] == b"data"


def test_tcp_end_trims_trailing_bytes() -> None:
    seg = tcp(payload=b"data") + b"pad"
    pkt = transport.tcp(DecodeStats(), SRC4, DST4, seg, 0, len(seg) - 3)
    assert pkt is not None and pkt[8] == b"data"


def test_tcp_bad_offsets() -> None:
    stats = DecodeStats()
    small = tcp(payload=b"x" * 40, doff=4)
    assert transport.tcp(stats, SRC4, DST4, small, 0, len(small)) is None
    beyond = tcp(payload=b"x" * 4, doff=15)
    assert transport.tcp(stats, SRC4, DST4, beyond, 0, len(beyond)) is None
    assert stats.bad_tcp_offset == 2


def test_tcp_short_header() -> None:
    stats = DecodeStats()
    assert transport.tcp(stats, SRC4, DST4, tcp()[:19], 0, 19) is None
    assert stats.malformed == 1


def test_udp_trimmed_to_its_length() -> None:
    stats = DecodeStats()
    dgram = udp(5353, 53, b"query") + b"\0" * 10
    pkt = transport.udp(stats, SRC4, DST4, dgram, 0, len(dgram), False)
    assert pkt == (17, SRC4, 5353, DST4, 53, 0, 0, 0, b"query")
    assert stats.truncated == 0


def test_udp_length_beyond_capture_keeps_what_is_there() -> None:
    stats = DecodeStats()
    dgram = udp(1, 2, b"abc", length=100)
    pkt = transport.udp(stats, SRC4, DST4, dgram, 0, len(dgram), False)
    assert pkt is not None and pkt[8] == b"abc"
    assert stats.truncated == 1
    transport.udp(stats, SRC4, DST4, dgram, 0, len(dgram), True)  # IP already counted it
    assert stats.truncated == 1


def test_udp_length_zero_means_captured_size() -> None:
    dgram = udp(1, 2, b"jumbo", length=0)
    pkt = transport.udp(DecodeStats(), SRC4, DST4, dgram, 0, len(dgram), False)
    assert pkt is not None and pkt[8] == b"jumbo"


def test_udp_malformed() -> None:
    stats = DecodeStats()
    assert transport.udp(stats, SRC4, DST4, udp(length=7), 0, 8, False) is None
    assert transport.udp(stats, SRC4, DST4, b"\0" * 7, 0, 7, False) is None
    assert stats.malformed == 2


@given(data=st.binary(max_size=80), cut=st.booleans())
def test_random_segments_never_raise(data: bytes, cut: bool) -> None:
    stats = DecodeStats()
    for parse in (transport.tcp,):
        pkt = parse(stats, SRC4, DST4, data, 0, len(data))
        assert pkt is None or len(pkt[8]) <= len(data) - 20
    pkt = transport.udp(stats, SRC4, DST4, data, 0, len(data), cut)
    assert pkt is None or len(pkt[8]) <= len(data) - 8
    if pkt is not None:
        assert pkt[2] == struct.unpack_from("!H", data)[0]
