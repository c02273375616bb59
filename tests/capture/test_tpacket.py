"""The TPACKET_V3 block walker on synthetic rings (anonymous mmaps laid out like the kernel's).

Normal blocks, cooked blocks with a synthesised SLL2 header, VLAN tags put back, blocks that
still belong to the kernel, ring wrap-around, and corrupted blocks that must never be read
outside their bounds.
"""

from __future__ import annotations

import mmap
import struct

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.base import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2
from pilotfish.capture.tpacket import (
    BLOCK_DESC,
    SOCKADDR_LL,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    TPACKET3_HDR,
    RingWalker,
    build_block,
)

BLOCK = 4096


def ring_of(*blocks: bytearray) -> mmap.mmap:
    mapping = mmap.mmap(-1, BLOCK * len(blocks))
    for index, block in enumerate(blocks):
        mapping[index * BLOCK : (index + 1) * BLOCK] = bytes(block)
    return mapping


def status_of(mapping: mmap.mmap, index: int) -> int:
    status: int = struct.unpack_from("=I", mapping, index * BLOCK + 8)[0]
    return status


def test_header_layouts_match_the_kernel() -> None:
    assert BLOCK_DESC.size == 48  # struct tpacket_block_desc with tpacket_hdr_v1
    assert TPACKET3_HDR.size == 48  # struct tpacket3_hdr
    assert SOCKADDR_LL.size == 20


def test_walks_a_block_and_gives_it_back() -> None:
    frames = [(100, 500_000_000, b"\x01" * 60, 60), (101, 0, b"\x02" * 1514, 9000)]
    mapping = ring_of(build_block(frames, BLOCK), build_block([], BLOCK, status=0))
    walker = RingWalker(mapping, BLOCK, 2, LINKTYPE_ETHERNET)
    assert walker.ready()
    got = walker.next_block()
    assert got == [
        (100.5, LINKTYPE_ETHERNET, b"\x01" * 60, 60),
        (101.0, LINKTYPE_ETHERNET, b"\x02" * 1514, 9000),
    ]
    assert all(type(f[2]) is bytes for f in got)
    assert status_of(mapping, 0) == TP_STATUS_KERNEL
    assert (walker.received, walker.bytes, walker.blocks) == (2, 1574, 1)
    assert walker.next_block() is None  # block 1 still belongs to the kernel
    assert not walker.ready()


def test_frames_survive_the_block_being_reused() -> None:
    mapping = ring_of(build_block([(1, 0, b"abc", 3)], BLOCK))
    walker = RingWalker(mapping, BLOCK, 1, LINKTYPE_ETHERNET)
    got = walker.next_block()
    mapping[:] = b"\xff" * BLOCK
    assert got == [(1.0, LINKTYPE_ETHERNET, b"abc", 3)]


def test_wraps_around_the_ring() -> None:
    blocks = [build_block([(n, 0, bytes([n]) * 10, 10)], BLOCK) for n in range(3)]
    mapping = ring_of(*blocks)
    walker = RingWalker(mapping, BLOCK, 3, LINKTYPE_ETHERNET)
    assert [walker.next_block() for _ in range(3)] == [
        [(float(n), LINKTYPE_ETHERNET, bytes([n]) * 10, 10)] for n in range(3)
    ]
    assert walker.next_block() is None
    mapping[0:BLOCK] = bytes(build_block([(7, 0, b"again", 5)], BLOCK))
    assert walker.next_block() == [(7.0, LINKTYPE_ETHERNET, b"again", 5)]


def test_empty_user_block_is_returned_too() -> None:
    mapping = ring_of(build_block([], BLOCK))
    walker = RingWalker(mapping, BLOCK, 1, LINKTYPE_ETHERNET)
    assert walker.next_block() == []
    assert status_of(mapping, 0) == TP_STATUS_KERNEL


def test_cooked_frames_get_an_sll2_header() -> None:
    sockaddr = SOCKADDR_LL.pack(17, b"\x08\x00", 7, 1, 4, 6, b"\xaa\xbb\xcc\xdd\xee\xff\x00\x00")
    mapping = ring_of(build_block([(5, 250, b"IPDATA", 6)], BLOCK, sockaddr=sockaddr))
    walker = RingWalker(mapping, BLOCK, 1, LINKTYPE_ETHERNET, cooked=True)
    [(ts, linktype, data, wirelen)] = walker.next_block() or []
    assert linktype == LINKTYPE_LINUX_SLL2 == walker.linktype
    assert ts == 5 + 250e-9
    assert data == (
        b"\x08\x00" + b"\x00\x00" + (7).to_bytes(4, "big") + b"\x00\x01" + b"\x04" + b"\x06"
        + b"\xaa\xbb\xcc\xdd\xee\xff\x00\x00" + b"IPDATA"
    )  # fmt: skip
    assert wirelen == 26
    assert walker.bytes == 26


def test_stripped_vlan_tag_is_restored() -> None:
    eth = b"\x11" * 6 + b"\x22" * 6 + b"\x08\x00" + b"payload"
    block = build_block([(1, 0, eth, len(eth))], BLOCK)
    frame = BLOCK_DESC.size
    struct.pack_into("=I", block, frame + 20, TP_STATUS_USER | TP_STATUS_VLAN_VALID)
    struct.pack_into("=IH", block, frame + 32, 0x0064, 0)  # VLAN 100, tpid unset
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET)
    [(_, _, data, wirelen)] = walker.next_block() or []
    assert data == eth[:12] + b"\x81\x00\x00\x64" + eth[12:]
    assert wirelen == len(eth) + 4
    assert walker.vlan_restored == 1


def test_frame_running_past_its_block_is_cut_and_counted() -> None:
    block = build_block([(1, 0, b"ok", 2), (2, 0, b"bad", 3)], BLOCK)
    second = BLOCK_DESC.size + 96
    struct.pack_into("=I", block, second + 12, BLOCK)  # tp_snaplen far too large
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET)
    assert walker.next_block() == [(1.0, LINKTYPE_ETHERNET, b"ok", 2)]
    assert walker.ring_errors == 1


def test_lying_packet_count_stops_at_the_block_end() -> None:
    block = build_block([(1, 0, b"x" * 100, 100)], BLOCK)
    struct.pack_into("=II", block, 12, 1_000_000, BLOCK_DESC.size)  # num_pkts huge
    struct.pack_into("=I", block, BLOCK_DESC.size, 1024)  # next_offset keeps going
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET)
    frames = walker.next_block() or []
    assert frames[0] == (1.0, LINKTYPE_ETHERNET, b"x" * 100, 100)
    assert len(frames) == 2  # the zeroed header after it has no next offset: the walk ends


def test_first_offset_outside_the_block() -> None:
    block = build_block([(1, 0, b"x", 1)], BLOCK)
    struct.pack_into("=I", block, 16, BLOCK - 4)
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET, cooked=True)
    assert walker.next_block() == []
    assert walker.ring_errors == 1
    assert status_of(walker._ring, 0) == TP_STATUS_KERNEL


frame_lists = st.lists(
    st.tuples(
        st.integers(0, 2**32 - 1),
        st.integers(0, 999_999_999),
        st.binary(min_size=0, max_size=300),
    ),
    max_size=8,
)


@given(frame_lists)
def test_property_walker_returns_exactly_what_was_written(
    specs: list[tuple[int, int, bytes]],
) -> None:
    frames = [(sec, nsec, data, len(data) + 4) for sec, nsec, data in specs]
    walker = RingWalker(ring_of(build_block(frames, BLOCK)), BLOCK, 1, LINKTYPE_ETHERNET)
    got = walker.next_block()
    assert got == [(s + n * 1e-9, LINKTYPE_ETHERNET, d, w) for s, n, d, w in frames]
    assert walker.bytes == sum(len(d) for _, _, d, _ in frames)


@given(
    st.binary(min_size=1, max_size=512),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_property_garbage_blocks_never_escape(
    garbage: bytes, count: int, first: int, cooked: bool
) -> None:
    block = bytearray((garbage * (BLOCK // len(garbage) + 1))[:BLOCK])
    struct.pack_into("=III", block, 8, TP_STATUS_USER, count, first)
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET, cooked=cooked)
    frames = walker.next_block()
    assert frames is not None
    assert all(len(f[2]) <= BLOCK for f in frames)
    assert status_of(walker._ring, 0) == TP_STATUS_KERNEL


def test_filling_is_the_kernels_block_that_already_holds_frames() -> None:
    frames = [(1, 0, b"x" * 60, 60)]
    mapping = ring_of(
        build_block(frames, BLOCK, status=TP_STATUS_KERNEL),
        build_block([], BLOCK, status=TP_STATUS_KERNEL),
    )
    walker = RingWalker(mapping, BLOCK, 2, LINKTYPE_ETHERNET)
    assert walker.filling()  # being filled: the kernel will retire it
    assert walker.next_block() is None
    mapping[8:12] = struct.pack("=I", TP_STATUS_USER)  # retired
    assert not walker.filling()
    assert walker.next_block() == [(1.0, LINKTYPE_ETHERNET, b"x" * 60, 60)]
    assert not walker.filling()  # block 1: the kernel's, but empty


# --- straight to pcap records -------------------------------------------------------------


def records_of(frames: list[tuple[int, int, bytes, int]], snaplen: int, nanosecond: bool) -> bytes:
    """Classic pcap records of (sec, nsec, captured bytes, wire length), as a file holds them."""
    out = b""
    for sec, nsec, data, wire in frames:
        kept = data[:snaplen]
        frac = nsec if nanosecond else nsec // 1000
        out += struct.pack("<IIII", sec, frac, len(kept), wire) + kept
    return out


@given(
    frame_lists,
    st.integers(0, 400),
    st.booleans(),
    st.sampled_from(["raw", "cooked", "vlan"]),
)
def test_property_pcap_records_hold_what_the_frames_hold(
    specs: list[tuple[int, int, bytes]], snaplen: int, nanosecond: bool, kind: str
) -> None:
    frames = [(sec, nsec, data, len(data) + 4) for sec, nsec, data in specs]
    sockaddr = SOCKADDR_LL.pack(17, b"\x08\x00", 7, 1, 0, 6, b"\x02" * 6 + b"\x00\x00")
    block = build_block(frames, BLOCK, sockaddr=sockaddr if kind == "cooked" else b"")
    if kind == "vlan":  # every frame of 12 bytes or more carries a stripped tag
        offset = BLOCK_DESC.size
        for _ in frames:
            status = TP_STATUS_USER | TP_STATUS_VLAN_VALID
            struct.pack_into("=I", block, offset + 20, status)
            struct.pack_into("=IHH", block, offset + 32, 0x0123, 0x88A8, 0)
            offset += struct.unpack_from("=I", block, offset)[0]
    cooked = kind == "cooked"
    as_frames = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET, cooked=cooked)
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET, cooked=cooked)
    expected = as_frames.next_block()
    out = bytearray(7 + BLOCK)
    taken = walker.next_block_pcap(out, 7, snaplen, nanosecond)
    assert taken is not None and expected is not None
    end, count = taken
    exact = [(s, n, f[2], f[3]) for (s, n, _), f in zip(specs, expected, strict=True)]
    assert bytes(out[7:end]) == records_of(exact, snaplen, nanosecond)
    assert count == len(expected) == walker.received
    assert walker.bytes == as_frames.bytes
    assert walker.vlan_restored == as_frames.vlan_restored
    assert status_of(walker._ring, 0) == TP_STATUS_KERNEL
    assert walker.next_block_pcap(out, 7, snaplen, nanosecond) is None  # the kernel's again


@given(
    st.binary(min_size=1, max_size=512),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_property_garbage_blocks_never_escape_into_records(
    garbage: bytes, count: int, first: int, cooked: bool
) -> None:
    block = bytearray((garbage * (BLOCK // len(garbage) + 1))[:BLOCK])
    struct.pack_into("=III", block, 8, TP_STATUS_USER, count, first)
    walker = RingWalker(ring_of(block), BLOCK, 1, LINKTYPE_ETHERNET, cooked=cooked)
    out = bytearray(BLOCK)
    taken = walker.next_block_pcap(out, 0, 262144, True)
    assert taken is not None and 0 <= taken[0] <= BLOCK
    assert status_of(walker._ring, 0) == TP_STATUS_KERNEL


def test_a_buffer_without_room_ends_the_walk_as_an_error() -> None:
    frames = [(1, 0, b"x" * 100, 100), (2, 0, b"y" * 100, 100)]
    walker = RingWalker(ring_of(build_block(frames, BLOCK)), BLOCK, 1, LINKTYPE_ETHERNET)
    out = bytearray(150)  # room for one record of 116 bytes, not two
    assert walker.next_block_pcap(out, 0, 262144, False) == (116, 1)
    assert walker.ring_errors == 1
    assert bytes(out[:116]) == records_of([(1, 0, b"x" * 100, 100)], 262144, False)


def test_loopback_echoes_are_skipped_once_and_counted() -> None:
    def sll(ifindex: int, pkttype: int) -> bytes:
        return SOCKADDR_LL.pack(17, b"\x08\x00", ifindex, 772, pkttype, 6, bytes(8))

    sent, received, elsewhere = sll(1, 4), sll(1, 0), sll(2, 4)  # PACKET_OUTGOING is 4
    frame = [(1, 0, b"a" * 20, 20)]
    blocks = [build_block(frame, BLOCK, sockaddr=s) for s in (sent, received, elsewhere)]
    walker = RingWalker(ring_of(*blocks), BLOCK, 3, LINKTYPE_ETHERNET, loopback=1)
    kept = [(1.0, LINKTYPE_ETHERNET, b"a" * 20, 20)]
    assert [walker.next_block() for _ in range(3)] == [[], kept, kept]  # sent on 1 only
    assert walker.echoes == 1 and walker.received == 2
    records = RingWalker(ring_of(*blocks), BLOCK, 3, LINKTYPE_ETHERNET, loopback=1)
    out = bytearray(BLOCK)
    assert [records.next_block_pcap(out, 0, 262144, True) for _ in range(3)] == [
        (0, 0),
        (36, 1),
        (36, 1),
    ]
    assert records.echoes == 1
    kept_all = RingWalker(ring_of(*blocks), BLOCK, 3, LINKTYPE_ETHERNET)  # not a loopback
    assert [len(kept_all.next_block() or []) for _ in range(3)] == [1, 1, 1]
