"""Link layers: find where the network-layer header starts and what it is.

Every function here takes the frame and the offset of the link header and returns
`(ethertype, offset_of_l3_header)`; raw-IP and BSD loopback frames are mapped to the
ethertype of their IP version, so the next stage only ever dispatches on ethertypes.
Supported: Ethernet II with any stack of 802.1Q (0x8100), 802.1ad (0x88a8) and legacy QinQ
(0x9100, 0x9200) tags, Linux cooked SLL (16 bytes) and SLL2 (20 bytes), RAW/IPV4/IPV6 (by
the version nibble) and BSD NULL/LOOP (address family in either byte order).

Limits: at most `MAX_VLAN_TAGS` tags are skipped; a deeper stack gives `MALFORMED`.  A
link type without a parser gives `UNKNOWN_LINKTYPE`.  Short frames raise `struct.error`,
which the decoder counts as malformed.  Nothing here allocates besides the result tuple.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_TEB: Final = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows
VLAN_TPIDS: Final = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
MAX_VLAN_TAGS: Final = 8

UNKNOWN_LINKTYPE: Final = -1
MALFORMED: Final = -2
NOT_IP: Final = -3  # a BSD loopback family that is not IP

# BSD loopback address families meaning IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30)
_AF_INET: Final = 2
_AF_INET6: Final = frozenset((24, 28, 30))

_U8 = struct.Struct("!B").unpack_from
_U16 = struct.Struct("!H").unpack_from
_ETHERNET = struct.Struct("!12xH").unpack_from  # struct sizes = header sizes, so a short
_SLL = struct.Struct("!14xH").unpack_from  # header raises instead of pointing past the end
_SLL2 = struct.Struct("!H18x").unpack_from
_U32_BE = struct.Struct("!I").unpack_from
_U32_LE = struct.Struct("<I").unpack_from

LinkParser = Callable[[bytes, int], tuple[int, int]]


def locate_l3(linktype: int, data: bytes) -> tuple[int, int]:
    """Dispatch on the capture's link type; `(UNKNOWN_LINKTYPE, 0)` when unsupported."""
    parse = _PARSERS.get(linktype)
    if parse is None:
        return UNKNOWN_LINKTYPE, 0
    return parse(data, 0)


def ethernet(data: bytes, off: int) -> tuple[int, int]:
    """Ethernet II: 6+6 address bytes, ethertype, then any VLAN tags."""
    return _skip_vlans(data, _ETHERNET(data, off)[0], off + 14)


def linux_sll(data: bytes, off: int) -> tuple[int, int]:
    """Linux cooked capture v1: protocol (an ethertype) in the last 2 of 16 bytes."""
    return _skip_vlans(data, _SLL(data, off)[0], off + 16)


def linux_sll2(data: bytes, off: int) -> tuple[int, int]:
    """Linux cooked capture v2: protocol first, 20 bytes in all."""
    return _skip_vlans(data, _SLL2(data, off)[0], off + 20)


def raw_ip(data: bytes, off: int) -> tuple[int, int]:
    """No link header: the IP version nibble decides."""
    version = _U8(data, off)[0] >> 4
    if version == 4:
        return ETHERTYPE_IPV4, off
    if version == 6:
        return ETHERTYPE_IPV6, off
    return MALFORMED, off


def bsd_loopback(data: bytes, off: int) -> tuple[int, int]:
    """NULL/LOOP: a 4-byte address family, in the capturing host's or network byte order."""
    family = _U32_LE(data, off)[0]
    if family > 0xFFFF:
        family = _U32_BE(data, off)[0]
    if family == _AF_INET:
        return ETHERTYPE_IPV4, off + 4
    if family in _AF_INET6:
        return ETHERTYPE_IPV6, off + 4
    return NOT_IP, off + 4


def _skip_vlans(data: bytes, ethertype: int, off: int) -> tuple[int, int]:
    tags = 0
    while ethertype in VLAN_TPIDS:
        if tags == MAX_VLAN_TAGS:
            return MALFORMED, off
        ethertype = _U16(data, off + 2)[0]  # after the 2-byte tag control information
        off += 4
        tags += 1
    return ethertype, off


_PARSERS: Final[dict[int, LinkParser]] = {
    LINKTYPE_ETHERNET: ethernet,
    LINKTYPE_LINUX_SLL: linux_sll,
    LINKTYPE_LINUX_SLL2: linux_sll2,
    LINKTYPE_RAW: raw_ip,
    LINKTYPE_IPV4: raw_ip,
    LINKTYPE_IPV6: raw_ip,
    LINKTYPE_NULL: bsd_loopback,
    LINKTYPE_LOOP: bsd_loopback,
}
