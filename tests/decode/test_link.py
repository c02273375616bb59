"""Link layers: every supported link type leads to the IP header; the rest is flagged."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture import base
from pilotfish.decode import link

from .frames import ethernet, ipv4, ipv6, null, sll, sll2, tcp

V4 = ipv4(tcp())
V6 = ipv6(tcp())
LINKTYPES = [
    base.LINKTYPE_NULL,
    base.LINKTYPE_ETHERNET,
    base.LINKTYPE_RAW,
    base.LINKTYPE_LOOP,
    base.LINKTYPE_LINUX_SLL,
    base.LINKTYPE_IPV4,
    base.LINKTYPE_IPV6,
    base.LINKTYPE_LINUX_SLL2,
]


def test_ethernet_ipv4_and_ipv6() -> None:
    assert link.locate_l3(base.LINKTYPE_ETHERNET, ethernet(V4)) == (0x0800, 14)
    assert link.locate_l3(base.LINKTYPE_ETHERNET, ethernet(V6, 0x86DD)) == (0x86DD, 14)


@pytest.mark.parametrize(
    "tags",
    [(0x8100,), (0x88A8, 0x8100), (0x9100, 0x8100), (0x9100, 0x9100, 0x8100), (0x9200,)],
)
def test_vlan_stacks_are_skipped(tags: tuple[int, ...]) -> None:
    frame = ethernet(V4, 0x0800, tags)
    assert link.locate_l3(base.LINKTYPE_ETHERNET, frame) == (0x0800, 14 + 4 * len(tags))


def test_too_many_vlan_tags_is_malformed() -> None:
    frame = ethernet(V4, 0x0800, (0x8100,) * (link.MAX_VLAN_TAGS + 1))
    assert link.locate_l3(base.LINKTYPE_ETHERNET, frame)[0] == link.MALFORMED
    ok = ethernet(V4, 0x0800, (0x8100,) * link.MAX_VLAN_TAGS)
    assert link.locate_l3(base.LINKTYPE_ETHERNET, ok)[0] == 0x0800


def test_non_ip_ethertypes_pass_through_for_counting() -> None:
    assert link.locate_l3(base.LINKTYPE_ETHERNET, ethernet(bytes(28), 0x0806)) == (0x0806, 14)
    # an 802.3 length field instead of an ethertype
    assert link.locate_l3(base.LINKTYPE_ETHERNET, ethernet(bytes(46), 46))[0] == 46


def test_linux_cooked_v1_and_v2() -> None:
    assert link.locate_l3(base.LINKTYPE_LINUX_SLL, sll(V4)) == (0x0800, 16)
    assert link.locate_l3(base.LINKTYPE_LINUX_SLL, sll(V6, 0x86DD)) == (0x86DD, 16)
    assert link.locate_l3(base.LINKTYPE_LINUX_SLL2, sll2(V4)) == (0x0800, 20)
    assert link.locate_l3(base.LINKTYPE_LINUX_SLL2, sll2(V6, 0x86DD)) == (0x86DD, 20)


def test_cooked_capture_of_a_vlan_frame() -> None:
    frame = sll(struct.pack("!HH", 5, 0x0800) + V4, 0x8100)
    assert link.locate_l3(base.LINKTYPE_LINUX_SLL, frame) == (0x0800, 20)


@pytest.mark.parametrize("linktype", [base.LINKTYPE_RAW, base.LINKTYPE_IPV4, base.LINKTYPE_IPV6])
def test_raw_ip_by_version_nibble(linktype: int) -> None:
    assert link.locate_l3(linktype, V4) == (0x0800, 0)
    assert link.locate_l3(linktype, V6) == (0x86DD, 0)
    assert link.locate_l3(linktype, b"\x50" + V4[1:])[0] == link.MALFORMED


@pytest.mark.parametrize("linktype", [base.LINKTYPE_NULL, base.LINKTYPE_LOOP])
@pytest.mark.parametrize("order", ["<", ">"])
def test_bsd_loopback_families_in_either_byte_order(linktype: int, order: str) -> None:
    assert link.locate_l3(linktype, null(V4, 2, order)) == (0x0800, 4)
    for family in (24, 28, 30):
        assert link.locate_l3(linktype, null(V6, family, order)) == (0x86DD, 4)
    assert link.locate_l3(linktype, null(V4, 7, order)) == (link.NOT_IP, 4)


def test_unknown_linktype() -> None:
    assert link.locate_l3(147, ethernet(V4)) == (link.UNKNOWN_LINKTYPE, 0)


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_short_frames_raise_struct_error(linktype: int) -> None:
    with pytest.raises(struct.error):
        link.locate_l3(linktype, b"")


@pytest.mark.parametrize("linktype", LINKTYPES)
@given(data=st.binary(max_size=80))
def test_random_bytes_give_an_offset_or_struct_error(linktype: int, data: bytes) -> None:
    try:
        ethertype, off = link.locate_l3(linktype, data)
    except struct.error:
        return
    assert ethertype in (link.MALFORMED, link.NOT_IP) or 0 <= ethertype <= 0xFFFF
    assert 0 <= off <= len(data) or ethertype == link.MALFORMED
