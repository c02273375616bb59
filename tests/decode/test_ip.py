"""IPv4/IPv6 headers: lengths from the header, TSO and jumbo sizes, extension chains."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.decode import ip
from pilotfish.decode.stats import DecodeStats

from .frames import DST4, DST6, SRC4, SRC6, ah, ext, frag6, ipv4, ipv6, tcp, udp

SEGMENT = tcp(payload=b"x" * 10)


def test_ipv4_plain() -> None:
    stats = DecodeStats()
    data = ipv4(SEGMENT)
    assert ip.ipv4(stats, data, 0) == (6, SRC4, DST4, 20, len(data), 0, 7)


def test_ipv4_options_and_padding_trim() -> None:
    stats = DecodeStats()
    data = ipv4(SEGMENT, options=b"\x01" * 8) + bytes(12)  # 12 bytes of link padding
    proto, _, _, start, end, _, _ = ip.ipv4(stats, data, 0)  # type: ignore[misc]
    assert (proto, start, end) == (6, 28, 28 + len(SEGMENT))


def test_ipv4_fragment_word_and_id_are_reported() -> None:
    header = ip.ipv4(DecodeStats(), ipv4(b"a" * 8, offset=64, more=True, ident=513), 0)
    assert header is not None
    assert header[5] == 0x2000 | 8
    assert header[6] == 513


def test_ipv4_total_length_zero_on_tcp_is_a_super_frame() -> None:
    stats = DecodeStats()
    data = ipv4(SEGMENT, total=0)
    header = ip.ipv4(stats, data, 0)
    assert header is not None and header[4] == len(data)
    assert stats.tso == 1
    assert ip.ipv4(stats, ipv4(udp(), proto=17, total=0), 0) is None
    assert stats.malformed == 1


def test_ipv4_end_may_exceed_capture_for_the_caller_to_count() -> None:
    data = ipv4(SEGMENT)[:-5]
    header = ip.ipv4(DecodeStats(), data, 0)
    assert header is not None and header[4] == len(data) + 5


@pytest.mark.parametrize(
    "data",
    [
        ipv4(SEGMENT, version=6),
        ipv4(SEGMENT, ihl=4),
        ipv4(b"", ihl=15),  # a 60-byte header in a 20-byte packet
        ipv4(SEGMENT, total=19),
        ipv4(b"", options=b"\x01" * 4, total=20),
    ],
)
def test_ipv4_malformed(data: bytes) -> None:
    stats = DecodeStats()
    assert ip.ipv4(stats, data, 0) is None
    assert stats.malformed == 1


def test_ipv6_plain_and_padding() -> None:
    stats = DecodeStats()
    data = ipv6(SEGMENT) + bytes(6)
    assert ip.ipv6(stats, data, 0) == (6, SRC6, DST6, 40, 40 + len(SEGMENT))


def test_ipv6_payload_length_zero_is_jumbo() -> None:
    stats = DecodeStats()
    data = ipv6(SEGMENT, length=0)
    assert ip.ipv6(stats, data, 0) == (6, SRC6, DST6, 40, len(data))
    assert stats.tso == 1
    assert ip.ipv6(stats, ipv6(b"", nxt=59), 0) == (59, SRC6, DST6, 40, 40)
    assert stats.tso == 1


def test_ipv6_bad_version() -> None:
    stats = DecodeStats()
    assert ip.ipv6(stats, ipv6(SEGMENT, version=4), 0) is None
    assert stats.malformed == 1


@pytest.mark.parametrize(
    ("chain", "first", "size"),
    [
        (ext(6), 0, 8),
        (ext(6, 2), 43, 24),
        (ext(6, 1), 60, 16),
        (ah(6), 51, 24),
        (ext(43) + ext(60) + ext(51) + ah(60) + ext(6), 0, 8 + 8 + 8 + 24 + 8),
        (frag6(6, 0, False), 44, 8),  # atomic fragment
    ],
)
def test_extension_chain_is_skipped(chain: bytes, first: int, size: int) -> None:
    data = chain + SEGMENT
    assert ip.skip_extensions(data, first, 0, len(data)) == (6, size)


def test_chain_stops_at_a_real_fragment() -> None:
    data = ext(44) + frag6(6, 8, True) + b"x" * 8
    assert ip.skip_extensions(data, 0, 0, len(data)) == (44, 8)
    assert ip.fragment(data, 8) == (6, 8, True, 99)


@pytest.mark.parametrize("stop", [50, 59, 58, 17, 132])
def test_chain_stops_at_non_extension(stop: int) -> None:
    assert ip.skip_extensions(ext(stop), 60, 0, 8) == (stop, 8)


def test_chain_past_end_or_too_long_is_bad() -> None:
    assert ip.skip_extensions(ext(6, 4) + SEGMENT, 0, 0, 20)[0] == ip.BAD_CHAIN
    endless = ext(60) * (ip.MAX_EXT_HEADERS + 1)
    assert ip.skip_extensions(endless, 60, 0, len(endless))[0] == ip.BAD_CHAIN


def test_chain_cut_short_raises_struct_error() -> None:
    with pytest.raises(struct.error):
        ip.skip_extensions(b"\x06", 0, 0, 100)


@given(data=st.binary(max_size=120), nxt=st.integers(0, 255))
def test_random_headers_never_raise_anything_but_struct_error(data: bytes, nxt: int) -> None:
    stats = DecodeStats()
    try:
        v4 = ip.ipv4(stats, data, 0)
        v6 = ip.ipv6(stats, data, 0)
        chain = ip.skip_extensions(data, nxt, 0, len(data))
    except struct.error:
        return
    if v4 is not None:
        assert 20 <= v4[3] <= len(data)
    if v6 is not None:
        assert v6[3] == 40
    assert chain[0] == ip.BAD_CHAIN or chain[1] <= len(data)
