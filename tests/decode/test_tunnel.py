"""Tunnel headers: VXLAN, Geneve and GRE point at what they carry, or decline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.decode import tunnel
from pilotfish.decode.link import ETHERTYPE_TEB

from .frames import eth_tcp, geneve, gre, vxlan

INNER = eth_tcp()


def test_vxlan() -> None:
    assert tunnel.udp_tunnel(4789, vxlan(INNER)) == (ETHERTYPE_TEB, 8)
    assert tunnel.vxlan(vxlan(INNER, flags=0)) == (tunnel.NOT_A_TUNNEL, 0)
    assert tunnel.vxlan(vxlan(b"short")) == (tunnel.NOT_A_TUNNEL, 0)


def test_geneve_with_and_without_options() -> None:
    assert tunnel.udp_tunnel(6081, geneve(INNER)) == (ETHERTYPE_TEB, 8)
    assert tunnel.geneve(geneve(INNER, options=bytes(12))) == (ETHERTYPE_TEB, 20)
    assert tunnel.geneve(geneve(b"", protocol=0x0800)) == (0x0800, 8)


def test_geneve_declines_other_versions_and_short_options() -> None:
    assert tunnel.geneve(geneve(INNER, version=1)) == (tunnel.NOT_A_TUNNEL, 0)
    assert tunnel.geneve(geneve(b"", options=bytes(8))[:12]) == (tunnel.NOT_A_TUNNEL, 0)
    assert tunnel.geneve(b"\0" * 7) == (tunnel.NOT_A_TUNNEL, 0)


def test_gre_plain_key_and_sequence() -> None:
    assert tunnel.gre(gre(INNER, ETHERTYPE_TEB)) == (ETHERTYPE_TEB, 4)
    assert tunnel.gre(gre(b"", 0x0800, key=5)) == (0x0800, 8)
    assert tunnel.gre(gre(b"", 0x86DD, key=5, seq=9)) == (0x86DD, 12)


def test_gre_declines_pptp_and_routing() -> None:
    assert tunnel.gre(b"\x30\x01\x88\x0b" + bytes(12)) == (tunnel.NOT_A_TUNNEL, 0)
    assert tunnel.gre(b"\x40\x00\x08\x00" + bytes(12)) == (tunnel.NOT_A_TUNNEL, 0)
    assert tunnel.gre(b"\x20\x00\x08\x00") == (tunnel.NOT_A_TUNNEL, 0)  # key missing


def test_other_ports_are_not_tunnels() -> None:
    assert tunnel.udp_tunnel(53, vxlan(INNER)) == (tunnel.NOT_A_TUNNEL, 0)


@given(data=st.binary(max_size=64), port=st.sampled_from([4789, 6081]))
def test_random_payloads_never_raise(data: bytes, port: int) -> None:
    for kind, off in (tunnel.udp_tunnel(port, data), tunnel.gre(data)):
        assert kind == tunnel.NOT_A_TUNNEL or 0 < off <= len(data)
