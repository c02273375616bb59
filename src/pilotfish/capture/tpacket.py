"""The TPACKET_V3 block ring: its layout and the walker that turns retired blocks into frames.

The kernel fills blocks of `block_size` bytes; a block whose `block_status` has
`TP_STATUS_USER` belongs to user space.  `RingWalker.next_block()` takes the next such block
in ring order, copies each frame out (in C, `_tpwalk.walk_block`: one bytes object and one
tuple per frame) and hands the block straight back to the kernel (`TP_STATUS_KERNEL`), so a
consumer may keep the frames as long as it likes.  `next_block_pcap()` writes the block's
frames as pcap records straight into a caller's buffer instead (`_tpwalk.pcap_block`), for
capture to a file without a Python object per frame.

Frames are `model.Frame` tuples: (ring timestamp, linktype, bytes, wire length).  On a cooked
(SOCK_DGRAM) socket a LINUX_SLL2 header is synthesised from the frame's `sockaddr_ll`; on an
Ethernet socket a VLAN tag the NIC stripped is put back in the frame.  On a loopback device
(`loopback` = its ifindex) the copy of each frame as sent is skipped and counted in `echoes`:
the device hands it over again as received.

Works on any shared mapping, so it is tested on an anonymous mmap without a kernel ring.  Bounds:
a header, offset or length pointing outside its block ends that block's walk and is counted
in `ring_errors`; nothing is ever read outside the block; a block yields at most
block_size / 48 frames and a frame whose next offset is shorter than a header ends the walk.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from typing import Final

from pilotfish.capture._tpwalk import pcap_block, walk_block
from pilotfish.capture.base import LINKTYPE_LINUX_SLL2
from pilotfish.model import Frame

TPACKET_V3: Final = 2
TPACKET_ALIGNMENT: Final = 16
TP_STATUS_KERNEL: Final = 0
TP_STATUS_USER: Final = 1
TP_STATUS_VLAN_VALID: Final = 0x10
TP_STATUS_VLAN_TPID_VALID: Final = 0x40

# struct tpacket_req3: block_size, block_nr, frame_size, frame_nr, retire_blk_tov,
# sizeof_priv, feature_req_word
TPACKET_REQ3: Final = struct.Struct("=7I")
# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status,
# num_pkts, offset_to_first_pkt, blk_len, seq_num (u64), ts_first_pkt, ts_last_pkt
BLOCK_DESC: Final = struct.Struct("=IIIIIIQIIII")
_BLOCK_HEAD: Final = struct.Struct("=8xIII")  # block_status, num_pkts, offset_to_first_pkt
_BLOCK_STATUS_OFFSET: Final = 8
_STATUS: Final = struct.Struct("=I")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status,
# tp_mac, tp_net, hv1 {tp_rxhash, tp_vlan_tci, tp_vlan_tpid, pad}, tp_padding[8]
TPACKET3_HDR: Final = struct.Struct("=6IHHIIHH8x")
# struct sockaddr_ll right after the aligned tpacket3_hdr: family, protocol (network order,
# kept raw), ifindex, hatype, pkttype, halen, addr[8]
SOCKADDR_LL_OFFSET: Final = 48
SOCKADDR_LL: Final = struct.Struct("=H2siHBB8s")
# LINUX_SLL2 header: protocol, reserved, ifindex, hatype, pkttype, halen, addr[8]
SLL2_HEADER: Final = struct.Struct(">2s2xiHBB8s")
SLL2_HEADER_LEN: Final = SLL2_HEADER.size
_MIN_STRIDE: Final = TPACKET3_HDR.size  # no two frames can start closer than one header


class RingWalker:
    """Walk the blocks of one TPACKET_V3 ring in order, one retired block per call."""

    def __init__(
        self,
        ring: mmap.mmap,
        block_size: int,
        block_count: int,
        linktype: int,
        cooked: bool = False,
        loopback: int = 0,
    ) -> None:
        self._ring = ring
        self.loopback = loopback  # ifindex whose sent copies are skipped (0: none)
        self.block_size = block_size
        self.block_count = block_count
        self.linktype = LINKTYPE_LINUX_SLL2 if cooked else linktype
        self.cooked = cooked
        self._index = 0
        self.received = 0
        self.bytes = 0
        self.blocks = 0
        self.ring_errors = 0
        self.vlan_restored = 0
        self.echoes = 0

    def ready(self) -> bool:
        """Whether the next block in ring order belongs to user space."""
        offset = self._index * self.block_size + _BLOCK_STATUS_OFFSET
        status: int = _STATUS.unpack_from(self._ring, offset)[0]
        return bool(status & TP_STATUS_USER)

    def filling(self) -> bool:
        """Whether the next block is still the kernel's and already holds frames: the block
        being filled, which the kernel retires within two block timeouts."""
        status, count, _ = _BLOCK_HEAD.unpack_from(self._ring, self._index * self.block_size)
        return not status & TP_STATUS_USER and count > 0

    def next_block(self) -> list[Frame] | None:
        """The frames of the next retired block (then returned to the kernel), or None."""
        frames: list[Frame] = []

        def walk(base: int, count: int, first: int) -> tuple[int, int, int, int, int]:
            nbytes, errors, restored, echoes = walk_block(
                self._ring, base, count, first, self.block_size, self.linktype, self.cooked,
                self.loopback, frames,
            )  # fmt: skip
            return len(frames), nbytes, errors, restored, echoes

        return None if self._take(walk) is None else frames

    def next_block_pcap(
        self, out: bytearray, at: int, snaplen: int, nanosecond: bool
    ) -> tuple[int, int] | None:
        """The frames of the next retired block written as pcap records into `out` from `at`
        (which must leave `block_size` bytes of room): (end offset, frames), or None."""
        end = [at]

        def walk(base: int, count: int, first: int) -> tuple[int, int, int, int, int]:
            end[0], frames, nbytes, errors, restored, echoes = pcap_block(
                self._ring, base, count, first, self.block_size, self.cooked, self.loopback,
                snaplen, nanosecond, out, at,
            )  # fmt: skip
            return frames, nbytes, errors, restored, echoes

        taken = self._take(walk)
        return None if taken is None else (end[0], taken)

    def _take(self, walk: Callable[[int, int, int], tuple[int, int, int, int, int]]) -> int | None:
        """Walk the next retired block with `walk(base, count, first)` -> (frames, bytes,
        ring errors, VLAN tags restored, echoes), hand it back to the kernel, count; None when
        the block is still the kernel's, else the number of frames."""
        ring = self._ring
        base = self._index * self.block_size
        status, count, first = _BLOCK_HEAD.unpack_from(ring, base)
        if not status & TP_STATUS_USER:
            return None
        count = min(count, self.block_size // _MIN_STRIDE)
        try:
            frames, nbytes, errors, restored, echoes = walk(base, count, first)
        finally:
            _STATUS.pack_into(ring, base + _BLOCK_STATUS_OFFSET, TP_STATUS_KERNEL)
            self._index = (self._index + 1) % self.block_count
            self.blocks += 1
        self.received += frames
        self.bytes += nbytes
        self.ring_errors += errors
        self.vlan_restored += restored
        self.echoes += echoes
        return frames


def build_block(
    frames: list[tuple[int, int, bytes, int]],
    block_size: int,
    *,
    status: int = TP_STATUS_USER,
    sockaddr: bytes = b"",
    mac_offset: int = 80,
) -> bytearray:
    """A block laid out as the kernel writes it (for tests and benchmarks).

    `frames` are (sec, nsec, data, wirelen); `sockaddr` is the raw `sockaddr_ll` written
    after each header (cooked sockets); data starts `mac_offset` bytes into each frame.
    """
    block = bytearray(block_size)
    first = BLOCK_DESC.size
    offset = first
    for index, (sec, nsec, data, wirelen) in enumerate(frames):
        size = mac_offset + len(data)
        step = (size + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)
        last = index == len(frames) - 1
        if offset + size > block_size:
            raise ValueError("frames do not fit in the block")
        TPACKET3_HDR.pack_into(
            block, offset, 0 if last else step, sec, nsec, len(data), wirelen,
            TP_STATUS_USER, mac_offset, mac_offset, 0, 0, 0, 0,
        )  # fmt: skip
        block[offset + SOCKADDR_LL_OFFSET : offset + SOCKADDR_LL_OFFSET + len(sockaddr)] = sockaddr
        block[offset + mac_offset : offset + size] = data
        offset += step
    BLOCK_DESC.pack_into(block, 0, 1, 0, status, len(frames), first, offset, 0, 0, 0, 0, 0)
    return block
