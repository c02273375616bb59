"""TCP and UDP headers: turn a transport segment into the `L4Packet` tuple.

Checksums are never verified (offload makes them wrong in captures taken on veths).
TCP: a data offset below 5 words or past the end of the segment is counted as
`bad_tcp_offset` and the segment skipped.  UDP: the payload is trimmed to the UDP length;
a length that claims more than was captured keeps the captured part and counts it as
`truncated` (unless the IP layer already counted this packet, `cut`); a length below 8
is `malformed`; a length of 0 (jumbogram, UDP GSO) means "as much as was captured".
A header cut short is `malformed`.  The payload is the only new buffer made.
"""

from __future__ import annotations

import struct
from typing import Final

from pilotfish.decode.stats import DecodeStats
from pilotfish.model import IPPROTO_TCP, IPPROTO_UDP, L4Packet

TCP_HEADER: Final = 20
UDP_HEADER: Final = 8

_TCP = struct.Struct("!HHIIH").unpack_from  # ports, seq, ack, data offset|flags
_UDP = struct.Struct("!HHH").unpack_from  # ports, length


def tcp(
    stats: DecodeStats, src: bytes, dst: bytes, data: bytes, off: int, end: int
) -> L4Packet | None:
    """The TCP segment in data[off:end]."""
    if end - off < TCP_HEADER:
        stats.malformed += 1
        return None
    sport, dport, seq, ack, word = _TCP(data, off)
    start = off + (word >> 10 & 0x3C)
    if word < 0x5000 or start > end:
        stats.bad_tcp_offset += 1
        return None
    return (IPPROTO_TCP, src, sport, dst, dport, seq, ack, word & 0xFF, data[start:end])


def udp(
    stats: DecodeStats, src: bytes, dst: bytes, data: bytes, off: int, end: int, cut: bool
) -> L4Packet | None:
    """The UDP datagram in data[off:end]; `cut` says the IP layer already counted truncation."""
    if end - off < UDP_HEADER:
        stats.malformed += 1
        return None
    sport, dport, length = _UDP(data, off)
    if length:
        if length < UDP_HEADER:
            stats.malformed += 1
            return None
        if off + length <= end:
            end = off + length
        elif not cut:
            stats.truncated += 1
    return (IPPROTO_UDP, src, sport, dst, dport, 0, 0, 0, data[off + UDP_HEADER : end])
