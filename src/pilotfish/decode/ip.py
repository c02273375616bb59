"""IPv4 and IPv6 headers: where the transport payload is, how long it is, and fragments.

These are the general-path parsers (the decoder inlines the plain Ethernet/IPv4/TCP case).
They never look at checksums.  Lengths come from the header, not from the capture, so
Ethernet padding is trimmed; `end` may lie beyond the captured bytes (snap length), which
the caller counts as truncation.  A zero IPv4 total length on TCP (TSO/GRO super-frame) or
a zero IPv6 payload length (jumbogram, GSO) means "as much as was captured", counted as
`tso`.  Bad versions, header lengths and length fields are counted as `malformed`.

IPv6 extension headers (hop-by-hop, routing, destination options, AH and atomic fragment
headers) are skipped, at most `MAX_EXT_HEADERS` of them; the walk stops at a real fragment
header (the decoder reassembles) or at any other next-header value.
"""

from __future__ import annotations

import struct
from typing import Final

from pilotfish.decode.stats import DecodeStats

IPPROTO_HOPOPTS: Final = 0
IPPROTO_ROUTING: Final = 43
IPPROTO_FRAGMENT: Final = 44
IPPROTO_AH: Final = 51
IPPROTO_DSTOPTS: Final = 60
IPPROTO_NONE: Final = 59

MAX_EXT_HEADERS: Final = 16
BAD_CHAIN: Final = -1  # next-header value returned for a broken extension chain

_OPTION_HEADERS: Final = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS))

_IPV4 = struct.Struct("!BxHHHxB2x4s4s").unpack_from  # vihl, tot_len, id, frag, proto, src, dst
_IPV6 = struct.Struct("!IHBx16s16s").unpack_from  # ver/class/flow, plen, next, src, dst
_EXT = struct.Struct("!BB").unpack_from  # next header, length
_FRAG = struct.Struct("!BxHI").unpack_from  # next header, offset|flags, identification

IPv4Header = tuple[int, bytes, bytes, int, int, int, int]
"""(proto, src, dst, payload offset, payload end, flags|fragment offset word, id)"""

IPv6Header = tuple[int, bytes, bytes, int, int]
"""(next header, src, dst, offset after the fixed header, payload end)"""


def ipv4(stats: DecodeStats, data: bytes, off: int) -> IPv4Header | None:
    """Parse the IPv4 header at `off`; None (counted) when it is malformed."""
    vihl, total, ident, frag, proto, src, dst = _IPV4(data, off)
    header = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or header < 20 or off + header > len(data):
        stats.malformed += 1
        return None
    if total == 0:
        if proto != 6:
            stats.malformed += 1
            return None
        stats.tso += 1
        end = len(data)
    elif total < header:
        stats.malformed += 1
        return None
    else:
        end = off + total
    return proto, src, dst, off + header, end, frag, ident


def ipv6(stats: DecodeStats, data: bytes, off: int) -> IPv6Header | None:
    """Parse the fixed IPv6 header at `off`; None (counted) when the version is wrong."""
    word, length, nxt, src, dst = _IPV6(data, off)
    if word >> 28 != 6:
        stats.malformed += 1
        return None
    start = off + 40
    if length == 0 and nxt != IPPROTO_NONE:
        stats.tso += 1
        return nxt, src, dst, start, len(data)
    return nxt, src, dst, start, start + length


def skip_extensions(data: bytes, nxt: int, off: int, end: int) -> tuple[int, int]:
    """Walk IPv6 extension headers from `off`; return (next header, its offset).

    Stops at the first header that is not an extension, or at a fragment header that is a
    real fragment (returned as `IPPROTO_FRAGMENT`).  `BAD_CHAIN` when the chain runs past
    `end` or is longer than `MAX_EXT_HEADERS`.
    """
    for _ in range(MAX_EXT_HEADERS):
        if nxt in _OPTION_HEADERS:
            following, length = _EXT(data, off)
            off += (length + 1) << 3
        elif nxt == IPPROTO_AH:
            following, length = _EXT(data, off)
            off += (length + 2) << 2
        elif nxt == IPPROTO_FRAGMENT:
            following, where, _ident = _FRAG(data, off)
            if where & 0xFFF9:  # an offset or more-fragments: the decoder must reassemble
                return nxt, off
            off += 8  # an atomic fragment (RFC 6946) is just another header
        else:
            return nxt, off
        if off > end:
            return BAD_CHAIN, off
        nxt = following
    return BAD_CHAIN, off


def fragment(data: bytes, off: int) -> tuple[int, int, bool, int]:
    """The IPv6 fragment header at `off`: (next header, byte offset, more, identification)."""
    nxt, where, ident = _FRAG(data, off)
    return nxt, where & 0xFFF8, bool(where & 1), ident
