"""The decoder's counters: every frame that does not become an `L4Packet` is counted here.

Plain integer attributes (no locks, no dicts) so the decoder can bump them cheaply; only
abnormal outcomes are counted on the hot path, never the ordinary TCP/UDP segment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class DecodeStats:
    """What the decoder skipped, repaired or reassembled, by kind.

    unknown_linktype: frames of a link type pilotfish cannot decode.
    non_ip: frames whose ethertype/family is not IPv4 or IPv6 (ARP, LLDP, 802.3 LLC ...).
    icmp: ICMP and ICMPv6 packets (never decoded further, not even the quoted header).
    other_proto: IP packets of another protocol (SCTP, ESP, no-next-header ...).
    malformed: bad version, header length, length fields or headers cut short.
    truncated: packets cut by the snap length; the captured part is still returned.
    bad_tcp_offset: TCP data offset below 5 words or beyond the segment.
    tso: super-frames (IPv4 total length 0 on TCP, IPv6 payload length 0) sized by capture.
    fragments: IP fragments seen; reassembled: datagrams completed from them.
    fragment_timeouts: incomplete datagrams dropped after `fragment_timeout`.
    fragment_overflow: datagrams dropped because a bound was crossed (sets, size, pieces).
    fragment_overlaps: datagrams dropped because two fragments partly overlapped.
    fragment_duplicates: fragments ignored because an earlier one already held their bytes.
    tunnels: tunnel headers (VXLAN, Geneve, GRE, IP-in-IP) decapsulated.
    tunnel_too_deep: packets dropped because tunnels nested deeper than the bound.
    """

    unknown_linktype: int = 0
    non_ip: int = 0
    icmp: int = 0
    other_proto: int = 0
    malformed: int = 0
    truncated: int = 0
    bad_tcp_offset: int = 0
    tso: int = 0
    fragments: int = 0
    reassembled: int = 0
    fragment_timeouts: int = 0
    fragment_overflow: int = 0
    fragment_overlaps: int = 0
    fragment_duplicates: int = 0
    tunnels: int = 0
    tunnel_too_deep: int = 0

    def as_dict(self) -> dict[str, int]:
        """Every counter by name (for the end-of-run summary and metrics)."""
        return asdict(self)
