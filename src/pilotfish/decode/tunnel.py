"""Tunnel headers pilotfish looks through: VXLAN, Geneve and GRE.

Each function reads the tunnel header at the start of its payload and returns
`(ethertype, offset)` of what it carries, with `ETHERTYPE_TEB` meaning an inner Ethernet
frame; `(NOT_A_TUNNEL, 0)` when the header does not look like the tunnel (the packet is then
treated as ordinary traffic).  The decoder bounds how deep tunnels may nest.

Limits: VXLAN needs the I flag; Geneve version 0 only; GRE version 0 without the source
routing of RFC 1701 (enhanced GRE of PPTP and routed GRE are not decapsulated).
"""

from __future__ import annotations

import struct
from typing import Final

from pilotfish.decode.link import ETHERTYPE_TEB

VXLAN_PORT: Final = 4789
GENEVE_PORT: Final = 6081
TUNNEL_PORTS: Final = frozenset((VXLAN_PORT, GENEVE_PORT))
NOT_A_TUNNEL: Final = -1

_VXLAN_I_FLAG: Final = 0x08
_GRE_CHECKSUM: Final = 0x8000
_GRE_ROUTING: Final = 0x4000
_GRE_KEY: Final = 0x2000
_GRE_SEQUENCE: Final = 0x1000

_HEAD = struct.Struct("!BxH").unpack_from  # first byte, 16-bit protocol / GRE fields
_GRE = struct.Struct("!HH").unpack_from  # flags|version, protocol


def udp_tunnel(port: int, payload: bytes) -> tuple[int, int]:
    """Decapsulate by UDP destination port (VXLAN or Geneve)."""
    if port == VXLAN_PORT:
        return vxlan(payload)
    if port == GENEVE_PORT:
        return geneve(payload)
    return NOT_A_TUNNEL, 0


def vxlan(payload: bytes) -> tuple[int, int]:
    """RFC 7348: 8-byte header, then an Ethernet frame."""
    if len(payload) < 8 + 14:
        return NOT_A_TUNNEL, 0
    flags, _ = _HEAD(payload, 0)
    if not flags & _VXLAN_I_FLAG:
        return NOT_A_TUNNEL, 0
    return ETHERTYPE_TEB, 8


def geneve(payload: bytes) -> tuple[int, int]:
    """RFC 8926: 8-byte header plus options, carrying the ethertype it names."""
    if len(payload) < 8:
        return NOT_A_TUNNEL, 0
    first, protocol = _HEAD(payload, 0)
    if first >> 6:
        return NOT_A_TUNNEL, 0
    start = 8 + ((first & 0x3F) << 2)
    if start > len(payload):
        return NOT_A_TUNNEL, 0
    return protocol, start


def gre(payload: bytes) -> tuple[int, int]:
    """RFC 2784/2890: 4 bytes plus optional checksum, key and sequence words."""
    if len(payload) < 4:
        return NOT_A_TUNNEL, 0
    flags, protocol = _GRE(payload, 0)
    if flags & 0x7 or flags & _GRE_ROUTING:
        return NOT_A_TUNNEL, 0
    start = 4
    for bit in (_GRE_CHECKSUM, _GRE_KEY, _GRE_SEQUENCE):
        if flags & bit:
            start += 4
    if start > len(payload):
        return NOT_A_TUNNEL, 0
    return protocol, start
