"""Hand-built frames for the decoder tests: every header written field by field."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Sequence

SRC4 = bytes([10, 0, 0, 1])
DST4 = bytes([10, 0, 0, 2])
SRC6 = bytes.fromhex("fd000000000000000000000000000001")
DST6 = bytes.fromhex("fd000000000000000000000000000002")
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def tcp(
    sport: int = 40000,
    dport: int = 80,
    payload: bytes = b"",
    seq: int = 1000,
    ack: int = 2000,
    flags: int = 0x18,
    options: bytes = b"",
    doff: int | None = None,
) -> bytes:
    words = (20 + len(options)) // 4 if doff is None else doff
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, words << 4, flags, 65535, 0xBAD, 0)
    return head + options + payload


def udp(
    sport: int = 40000, dport: int = 53, payload: bytes = b"", length: int | None = None
) -> bytes:
    size = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, size, 0xBAD) + payload


def ipv4(
    payload: bytes,
    proto: int = 6,
    src: bytes = SRC4,
    dst: bytes = DST4,
    ident: int = 7,
    offset: int = 0,
    more: bool = False,
    total: int | None = None,
    options: bytes = b"",
    version: int = 4,
    ihl: int | None = None,
) -> bytes:
    words = (20 + len(options)) // 4 if ihl is None else ihl
    size = 20 + len(options) + len(payload) if total is None else total
    frag = (0x2000 if more else 0) | (offset // 8)
    head = struct.pack(
        "!BBHHHBBH4s4s", version << 4 | words, 0, size, ident, frag, 64, proto, 0, src, dst
    )
    return head + options + payload


def ipv6(
    payload: bytes,
    nxt: int = 6,
    src: bytes = SRC6,
    dst: bytes = DST6,
    length: int | None = None,
    version: int = 6,
) -> bytes:
    size = len(payload) if length is None else length
    return struct.pack("!IHBB16s16s", version << 28, size, nxt, 64, src, dst) + payload


def ext(nxt: int, body_words: int = 0) -> bytes:
    """Hop-by-hop, routing or destination options header of (1 + body_words) * 8 bytes."""
    return bytes([nxt, body_words]) + bytes(6 + 8 * body_words)


def ah(nxt: int) -> bytes:
    """Authentication header with a 12-byte ICV: length field 4 -> (4 + 2) * 4 = 24 bytes."""
    return bytes([nxt, 4]) + bytes(22)


def frag6(nxt: int, offset: int, more: bool, ident: int = 99) -> bytes:
    return struct.pack("!BBHI", nxt, 0, offset | int(more), ident)


def ethernet(payload: bytes, ethertype: int = 0x0800, tags: Sequence[int] = ()) -> bytes:
    vlan = b"".join(struct.pack("!HH", tpid, 100 + i) for i, tpid in enumerate(tags))  # TPID, TCI
    return MAC_B + MAC_A + vlan + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", protocol, 0, 3, 1, 0, 6, MAC_A + b"\0\0") + payload


def null(payload: bytes, family: int = 2, order: str = "<") -> bytes:
    return struct.pack(order + "I", family) + payload


def vxlan(inner: bytes, vni: int = 42, flags: int = 0x08) -> bytes:
    return struct.pack("!BxxxI", flags, vni << 8) + inner


def geneve(inner: bytes, protocol: int = 0x6558, options: bytes = b"", version: int = 0) -> bytes:
    first = version << 6 | len(options) // 4
    return struct.pack("!BBHI", first, 0, protocol, 42 << 8) + options + inner


def gre(
    inner: bytes, protocol: int = 0x0800, key: int | None = None, seq: int | None = None
) -> bytes:
    flags = (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    extra = b"".join(struct.pack("!I", v) for v in (key, seq) if v is not None)
    return struct.pack("!HH", flags, protocol) + extra + inner


def eth_tcp(payload: bytes = b"hello") -> bytes:
    """The everyday frame: Ethernet / IPv4 / TCP."""
    return ethernet(ipv4(tcp(payload=payload)))


def split(data: bytes, cuts: Iterable[int]) -> list[tuple[int, bytes]]:
    """Cut `data` at the given byte offsets (multiples of 8): [(offset, piece), ...]."""
    edges = [0, *sorted(set(cuts)), len(data)]
    return [(a, data[a:b]) for a, b in itertools.pairwise(edges) if b > a]


def ipv4_fragments(
    datagram: bytes, cuts: Iterable[int], proto: int = 17, ident: int = 7
) -> list[bytes]:
    """Ethernet frames carrying `datagram` (a transport segment) as IPv4 fragments."""
    pieces = split(datagram, cuts)
    last = pieces[-1][0]
    return [
        ethernet(ipv4(piece, proto=proto, ident=ident, offset=off, more=off != last))
        for off, piece in pieces
    ]


def ipv6_fragments(
    datagram: bytes, cuts: Iterable[int], nxt: int = 17, ident: int = 99
) -> list[bytes]:
    """Ethernet frames carrying `datagram` as IPv6 fragments."""
    pieces = split(datagram, cuts)
    last = pieces[-1][0]
    return [
        ethernet(ipv6(frag6(nxt, off, off != last, ident) + piece, nxt=44), 0x86DD)
        for off, piece in pieces
    ]
