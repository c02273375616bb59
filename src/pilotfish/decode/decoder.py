"""The L2-L4 decoder: one captured frame in, one `L4Packet` (TCP or UDP) or None out.

`Decoder.decode(ts, linktype, data)` is the hottest function of pilotfish.  The ordinary
cases -- IPv4 without options or fragmentation (or IPv6 without extension headers) over
Ethernet, one 802.1Q tag or Linux SLL2, carrying TCP or non-tunnel UDP, nothing cut -- are
read by a compiled fast path (`_fastl4.pyx`) and returned straight away (a property test
holds them equal to the general path).  Everything else takes the general path, layer by layer:
`link` (link types, VLAN stacks), `ip` (IPv4/IPv6, extension headers), `fragments`
(reassembly), `transport` (TCP/UDP) and `tunnel` (VXLAN, Geneve, GRE, IP-in-IP,
decapsulated and decoded again, at most `MAX_TUNNEL_DEPTH` deep).

Nothing that is not TCP or UDP is returned; every such frame is counted by kind in
`Decoder.stats` (ARP and other ethertypes, ICMP -- whose quoted headers are never decoded --,
other IP protocols, malformed headers).  A frame that raises `struct.error` anywhere on the
general path (a header cut short) is counted as malformed; no exception leaves `decode`.
State is bounded: only the fragment reassembler keeps anything between frames, within
`DecodeLimits`, expired on capture time by `expire(now)`.
"""

from __future__ import annotations

import struct
from typing import Final

from pilotfish.config import DecodeLimits
from pilotfish.decode import ip, link, transport, tunnel
from pilotfish.decode._fastl4 import fast_l4
from pilotfish.decode.fragments import Reassembler
from pilotfish.decode.stats import DecodeStats
from pilotfish.model import IPPROTO_TCP, IPPROTO_UDP, L4Packet

__all__ = ["MAX_TUNNEL_DEPTH", "DecodeStats", "Decoder"]

MAX_TUNNEL_DEPTH: Final = 3

_IPPROTO_ICMP: Final = 1
_IPPROTO_IPIP: Final = 4
_IPPROTO_IPV6: Final = 41
_IPPROTO_GRE: Final = 47
_IPPROTO_ICMPV6: Final = 58
_CARRIERS: Final = frozenset((IPPROTO_TCP, IPPROTO_UDP, _IPPROTO_IPIP, _IPPROTO_IPV6, _IPPROTO_GRE))
_IN_IP: Final = {_IPPROTO_IPIP: link.ETHERTYPE_IPV4, _IPPROTO_IPV6: link.ETHERTYPE_IPV6}

_TUNNEL_PORTS: Final = tunnel.TUNNEL_PORTS  # UDP to these ports takes the general path


class Decoder:
    """Decodes frames of any supported link type; keeps counters and pending fragments."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.stats = DecodeStats()
        self._fragments = Reassembler(limits, self.stats)

    def decode(self, ts: float, linktype: int, data: bytes) -> L4Packet | None:
        """Decode one frame captured at `ts`; None when it carries no TCP/UDP payload."""
        pkt = fast_l4(data, linktype, _TUNNEL_PORTS)
        if pkt is not None:
            return pkt
        return self.decode_general(ts, linktype, data)

    def decode_general(self, ts: float, linktype: int, data: bytes) -> L4Packet | None:
        """The layer-by-layer path; `decode` gives the same answer, faster for plain TCP."""
        try:
            ethertype, off = link.locate_l3(linktype, data)
            if ethertype == link.UNKNOWN_LINKTYPE:
                self.stats.unknown_linktype += 1
                return None
            return self._network(ts, ethertype, data, off, 0)
        except struct.error:
            self.stats.malformed += 1
            return None

    def expire(self, now: float) -> None:
        """Drop incomplete IP datagrams older than `limits.fragment_timeout` (counted)."""
        self._fragments.expire(now)

    @property
    def pending_fragments(self) -> int:
        """IP datagrams currently being reassembled."""
        return len(self._fragments)

    # --- network layer ----------------------------------------------------------------

    def _network(
        self, ts: float, ethertype: int, data: bytes, off: int, depth: int
    ) -> L4Packet | None:
        if ethertype == link.ETHERTYPE_TEB:  # a tunnel's inner Ethernet frame
            ethertype, off = link.ethernet(data, off)
        if ethertype == link.ETHERTYPE_IPV4:
            return self._ipv4(ts, data, off, depth)
        if ethertype == link.ETHERTYPE_IPV6:
            return self._ipv6(ts, data, off, depth)
        if ethertype == link.MALFORMED:
            self.stats.malformed += 1
        else:
            self.stats.non_ip += 1
        return None

    def _ipv4(self, ts: float, data: bytes, off: int, depth: int) -> L4Packet | None:
        header = ip.ipv4(self.stats, data, off)
        if header is None:
            return None
        proto, src, dst, start, end, frag, ident = header
        if not frag & 0x3FFF:
            return self._transport(ts, proto, src, dst, data, start, end, depth)
        if proto not in _CARRIERS:
            return self._other(proto)
        if end > len(data):  # a cut fragment cannot be reassembled
            self.stats.truncated += 1
            return None
        whole = self._fragments.add(
            (src, dst, ident, proto), ts, (frag & 0x1FFF) << 3, bool(frag & 0x2000), data[start:end]
        )
        if whole is None:
            return None
        return self._transport(ts, proto, src, dst, whole, 0, len(whole), depth)

    def _ipv6(self, ts: float, data: bytes, off: int, depth: int) -> L4Packet | None:
        header = ip.ipv6(self.stats, data, off)
        if header is None:
            return None
        nxt, src, dst, start, end = header
        nxt, start = ip.skip_extensions(data, nxt, start, end)
        if nxt != ip.IPPROTO_FRAGMENT:
            return self._ipv6_upper(ts, nxt, src, dst, data, start, end, depth)
        if end > len(data):
            self.stats.truncated += 1
            return None
        nxt, offset, more, ident = ip.fragment(data, start)
        whole = self._fragments.add((src, dst, ident, nxt), ts, offset, more, data[start + 8 : end])
        if whole is None:
            return None
        nxt, start = ip.skip_extensions(whole, nxt, 0, len(whole))
        if nxt == ip.IPPROTO_FRAGMENT:  # a fragment inside a reassembled datagram
            self.stats.malformed += 1
            return None
        return self._ipv6_upper(ts, nxt, src, dst, whole, start, len(whole), depth)

    def _ipv6_upper(
        self,
        ts: float,
        nxt: int,
        src: bytes,
        dst: bytes,
        data: bytes,
        start: int,
        end: int,
        depth: int,
    ) -> L4Packet | None:
        if nxt == ip.BAD_CHAIN:
            self.stats.malformed += 1
            return None
        return self._transport(ts, nxt, src, dst, data, start, end, depth)

    # --- transport layer and tunnels --------------------------------------------------

    def _transport(
        self,
        ts: float,
        proto: int,
        src: bytes,
        dst: bytes,
        data: bytes,
        start: int,
        end: int,
        depth: int,
    ) -> L4Packet | None:
        cut = end > len(data)
        if cut:
            self.stats.truncated += 1
            end = len(data)
        if proto == IPPROTO_TCP:
            return transport.tcp(self.stats, src, dst, data, start, end)
        if proto == IPPROTO_UDP:
            pkt = transport.udp(self.stats, src, dst, data, start, end, cut)
            if pkt is None or pkt[4] not in tunnel.TUNNEL_PORTS:
                return pkt
            ethertype, inner = tunnel.udp_tunnel(pkt[4], pkt[8])
            if ethertype == tunnel.NOT_A_TUNNEL:
                return pkt
            return self._decapsulate(ts, ethertype, pkt[8], inner, depth)
        if proto == _IPPROTO_GRE:
            payload = data[start:end]
            ethertype, inner = tunnel.gre(payload)
            if ethertype == tunnel.NOT_A_TUNNEL:
                return self._other(proto)
            return self._decapsulate(ts, ethertype, payload, inner, depth)
        if proto in _IN_IP:
            return self._decapsulate(ts, _IN_IP[proto], data[start:end], 0, depth)
        return self._other(proto)

    def _decapsulate(
        self, ts: float, ethertype: int, payload: bytes, off: int, depth: int
    ) -> L4Packet | None:
        if depth >= MAX_TUNNEL_DEPTH:
            self.stats.tunnel_too_deep += 1
            return None
        self.stats.tunnels += 1
        return self._network(ts, ethertype, payload, off, depth + 1)

    def _other(self, proto: int) -> L4Packet | None:
        """Count a protocol pilotfish does not decode (ICMP is never looked inside)."""
        if proto in (_IPPROTO_ICMP, _IPPROTO_ICMPV6):
            self.stats.icmp += 1
        else:
            self.stats.other_proto += 1
        return None
