"""AF_PACKET live capture: one TPACKET_V3 mmap ring per interface, polled together.

Each interface gets a packet socket (SOCK_RAW for Ethernet/loopback/raw-IP devices, a cooked
SOCK_DGRAM socket for `any` and for other device types, whose frames carry a synthesised
LINUX_SLL2 header), a block ring of `block_count` x `block_size` bytes retired after
`block_timeout_ms`, the capture filter compiled by libpcap and attached with
SO_ATTACH_FILTER, and optionally a PACKET_FANOUT_HASH|DEFRAG group so several processes
split an interface by flow.  The socket is created with protocol 0 (it receives nothing),
filtered and ringed, and only then bound to ETH_P_ALL: no unfiltered frame ever enters it.

`batches()` yields one batch per retired block.  It waits in poll() with a short timeout next
to a wake-up pipe, so `close()` (safe twice, safe from another thread or a signal handler)
ends it promptly.  Nothing that arrived before `close()` is lost: `batches()` first drains
the ring, including the block the kernel is still filling, which it retires within two block
timeouts (the wait is bounded by that, plus a margin); the ring is released when
`batches()` ends, or by `close()` itself when no `batches()` is running.

Counters: `received`/`bytes` are frames and captured bytes handed over; `dropped` sums the
kernel's tp_drops (PACKET_STATISTICS resets on read, so it is accumulated); on a TPACKET_V3
ring socket a frame is counted there when it found no free block (the ring was full; a
failed kernel allocation is the only other, rare, cause), so all of it is also reported as
`extra["ring_dropped"]`; `if_dropped` is the growth of the interfaces' rx_dropped since
open.  A filter the kernel cannot run on a cooked socket (it reads link-header bytes) runs
in user space; frames it rejects are counted in `extra["user_filtered"]`.  Ring walk bounds
are those of `tpacket.RingWalker`.  A loopback device hands the socket every frame twice (as
sent and as received): the sent copy is skipped and counted in `extra["loopback_echoes"]`,
so each frame is captured once, as tcpdump does.

`pcap_batches()` is `batches()` for capture to a file: each block as ready pcap records,
written in C straight from the ring, with no Python object per frame (`live` uses it for
`-w` when every ring has the same link type and no user-space filter).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, TypeVar

from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    CaptureOptions,
    CaptureStats,
    SourceError,
    SourceUnavailable,
)
from pilotfish.capture.bpf import DEFAULT_SNAPLEN, BpfError, BpfProgram, compile_filter
from pilotfish.capture.closing import RingClosing
from pilotfish.capture.tpacket import TPACKET_REQ3, TPACKET_V3, RingWalker
from pilotfish.model import Frame

NAME: Final = "afpacket"
T = TypeVar("T")
NEEDS_CAP: Final = "needs CAP_NET_RAW: run as root or grant the capability"
ANY: Final = "any"

SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_VERSION: Final = 10
PACKET_FANOUT: Final = 18
PACKET_MR_PROMISC: Final = 1
PACKET_FANOUT_HASH: Final = 0
PACKET_FANOUT_FLAG_DEFRAG: Final = 0x8000
SO_ATTACH_FILTER: Final = 26
ETH_P_ALL: Final = 0x0003
FRAME_SIZE: Final = 2048  # nominal tp_frame_size; V3 packs variable-size frames in blocks

_ARPHRD_LOOPBACK: Final = 772
# ARPHRD_* -> (socket type, linktype) for named interfaces; other types are captured cooked.
_ARPHRD_LINKTYPES: Final = {
    1: LINKTYPE_ETHERNET,  # ARPHRD_ETHER
    _ARPHRD_LOOPBACK: LINKTYPE_ETHERNET,  # zeroed Ethernet header
    65534: LINKTYPE_RAW,  # ARPHRD_NONE (tun, wireguard): IP from the first byte
}

_TPACKET_STATS_V3: Final = struct.Struct("=III")  # tp_packets, tp_drops, tp_freeze_q_cnt
_PACKET_MREQ: Final = struct.Struct("=iHH8s")
_U32: Final = struct.Struct("=I")
_SOCKADDR_LL: Final = struct.Struct("=HHiHBB8s")
_POLL_MS: Final = 100
_DRAIN_MARGIN_S: Final = 0.05
_DRAIN_NAP_S: Final = 0.002
_SYSFS_NET: Final = Path("/sys/class/net")


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.bind.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
    libc.bind.restype = ctypes.c_int
    return libc


def rx_dropped(interfaces: list[str]) -> int:
    """Sum of the interfaces' rx_dropped counters (missing ones count 0)."""
    total = 0
    for name in interfaces:
        try:
            total += int((_SYSFS_NET / name / "statistics" / "rx_dropped").read_text())
        except (OSError, ValueError):
            continue
    return total


@dataclass
class _Ring:
    """One interface's socket, mapping and walker."""

    interface: str
    ifindex: int
    sock: socket.socket
    mapping: mmap.mmap
    walker: RingWalker
    user_filter: BpfProgram | None
    user_filtered: int = 0
    kernel_packets: int = 0
    kernel_drops: int = 0
    freeze_q_cnt: int = 0

    def read_kernel_stats(self) -> None:
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS_V3.size)
        packets, drops, freezes = _TPACKET_STATS_V3.unpack(raw)
        self.kernel_packets += packets
        self.kernel_drops += drops
        self.freeze_q_cnt += freezes

    def take_block(self) -> tuple[list[Frame], int] | None:
        """The next retired block's frames (those the user-space filter keeps) and their
        count, or None while the kernel holds it."""
        frames = self.walker.next_block()
        if frames is None:
            return None
        if frames and self.user_filter is not None:
            matches = self.user_filter.matches
            kept = [f for f in frames if matches(f[2], f[3])]
            self.user_filtered += len(frames) - len(kept)
            frames = kept
        return frames, len(frames)


class AfPacketSource(RingClosing):
    """Live capture through TPACKET_V3 rings (see the module docstring)."""

    name = NAME

    def __init__(self, options: CaptureOptions) -> None:
        super().__init__()
        self.options = options
        self._rings: list[_Ring] = []
        self._if_dropped_base = 0
        self._reason = ""

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        names = list(self.options.interfaces) or [ANY]
        if ANY in names and len(names) > 1:
            raise SourceUnavailable(NAME, "'any' cannot be combined with named interfaces")
        try:
            for index, name in enumerate(names):
                self._rings.append(self._open_ring(name, index))
        except BaseException:
            self._release()
            raise
        self._wakeup.open()
        self._if_dropped_base = rx_dropped(self._sysfs_names())
        opts = self.options
        fanout = f", fanout group {opts.fanout_group}" if opts.fanout_group is not None else ""
        self._reason = (
            f"TPACKET_V3 ring {opts.block_count}x{opts.block_size // 1024} KiB "
            f"on {','.join(names)}{fanout}"
        )

    def _open_ring(self, name: str, index: int) -> _Ring:
        opts = self.options
        ifindex, linktype, cooked = _describe_interface(name)
        try:
            sock = socket.socket(
                socket.AF_PACKET, socket.SOCK_DGRAM if cooked else socket.SOCK_RAW, 0
            )
        except PermissionError as exc:
            raise SourceUnavailable(NAME, NEEDS_CAP) from exc
        except OSError as exc:
            raise SourceUnavailable(NAME, f"AF_PACKET sockets unavailable: {exc.strerror}") from exc
        mapping: mmap.mmap | None = None
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            user_filter = self._attach_filter(sock, linktype, cooked)
            size = opts.block_size * opts.block_count
            req = TPACKET_REQ3.pack(
                opts.block_size,
                opts.block_count,
                FRAME_SIZE,
                (opts.block_size // FRAME_SIZE) * opts.block_count,
                opts.block_timeout_ms,
                0,
                0,
            )
            try:
                sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
                mapping = mmap.mmap(
                    sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
                )
            except OSError as exc:
                raise SourceUnavailable(
                    NAME,
                    f"cannot set up a {opts.block_count}x{opts.block_size} byte ring "
                    f"on {name}: {exc.strerror}",
                ) from exc
            _bind(sock, ifindex, name)
            if opts.fanout_group is not None:
                group = (opts.fanout_group + index) & 0xFFFF
                mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG
                try:
                    sock.setsockopt(SOL_PACKET, PACKET_FANOUT, _U32.pack(group | (mode << 16)))
                except OSError as exc:
                    raise SourceUnavailable(
                        NAME, f"cannot join fanout group {group} on {name}: {exc.strerror}"
                    ) from exc
            if opts.promiscuous and ifindex:
                mreq = _PACKET_MREQ.pack(ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            walker = RingWalker(
                mapping, opts.block_size, opts.block_count, linktype, cooked, _loopback(name)
            )
            return _Ring(name, ifindex, sock, mapping, walker, user_filter)
        except BaseException:
            if mapping is not None:
                mapping.close()
            sock.close()
            raise

    def _attach_filter(self, sock: socket.socket, linktype: int, cooked: bool) -> BpfProgram | None:
        """Attach the kernel filter; return the program to run in user space, if any."""
        snaplen = self.options.snaplen
        expr = self.options.bpf
        kernel: BpfProgram | None = None
        user: BpfProgram | None = None
        if expr:
            program = compile_filter(expr, linktype, snaplen)
            kernel = program.for_cooked_socket() if cooked else program
            if kernel is None:
                user = program
        if kernel is None and (user is not None or snaplen < DEFAULT_SNAPLEN):
            kernel = BpfProgram.accept_all(snaplen)
        if kernel is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, kernel.sock_fprog())
            except OSError:
                if not expr:
                    raise
                user = compile_filter(expr, linktype, snaplen)
        return user

    def batches(self) -> Iterator[list[Frame]]:
        return self._blocks(_Ring.take_block, list)

    def record_linktype(self) -> int | None:
        """The link type of every ring when their frames can go to a pcap file straight from
        the ring (`pcap_batches`), else None (rings of different kinds, or a filter that
        runs in user space)."""
        kinds = {ring.walker.linktype for ring in self._rings}
        if len(kinds) != 1 or any(ring.user_filter is not None for ring in self._rings):
            return None
        return kinds.pop()

    def pcap_batches(self, snaplen: int, nanosecond: bool) -> Iterator[tuple[memoryview, int]]:
        """Like `batches()`, but each retired block comes as classic pcap records (cut to
        `snaplen`, µs or ns timestamps) with its frame count, written in C straight from the
        ring into one reused buffer: an item is valid until the next one is asked for.
        Only when `record_linktype()` is not None."""
        if self.record_linktype() is None:
            raise SourceError("afpacket: these rings cannot be written as records")
        buffer = bytearray(self.options.block_size)  # a block's records never outgrow it
        view = memoryview(buffer)

        def take(ring: _Ring) -> tuple[tuple[memoryview, int], int] | None:
            got = ring.walker.next_block_pcap(buffer, 0, snaplen, nanosecond)
            return None if got is None else ((view[: got[0]], got[1]), got[1])

        return self._blocks(take, lambda: (view[:0], 0))

    def _blocks(
        self, take: Callable[[_Ring], tuple[T, int] | None], idle: Callable[[], T]
    ) -> Iterator[T]:
        """What `take(ring)` makes of each retired block -> (item, frames), None while the
        kernel still holds it; `idle()` when nothing arrived for a poll interval."""
        if not self._rings and not self._closing.is_set():
            raise SourceError("afpacket: batches() before open()")
        self._iterating = True
        try:
            yield from self._read(take, idle)
            yield from self._drain(take)
        finally:
            self._iterating = False
            if self._closing.is_set():
                self._finish()

    def _read(
        self, take: Callable[[_Ring], tuple[T, int] | None], idle: Callable[[], T]
    ) -> Iterator[T]:
        """Retired blocks as they come, until close() is called."""
        poller = select.poll()
        by_fd: dict[int, _Ring] = {}
        for ring in self._rings:
            by_fd[ring.sock.fileno()] = ring
            poller.register(ring.sock.fileno(), select.POLLIN | select.POLLERR)
        if self._wakeup.fd >= 0:
            poller.register(self._wakeup.fd, select.POLLIN)
        while not self._closing.is_set():
            produced = False
            for ring in self._rings:
                with self._lock:
                    got = take(ring)
                if got is None:
                    continue
                produced = True
                if got[1]:
                    yield got[0]
            if produced:
                continue
            events = poller.poll(_POLL_MS)
            if self._closing.is_set():
                return
            if not events:
                yield idle()  # let the consumer run its timers
            for fd, event in events:
                if event & (select.POLLERR | select.POLLHUP) and fd in by_fd:
                    self._check_socket_error(by_fd[fd])

    def _drain(self, take: Callable[[_Ring], tuple[T, int] | None]) -> Iterator[T]:
        """After close(): every ring's retired blocks and the block still being filled.

        Bounded: at most one ring's worth of blocks plus the current one per ring, and the
        wait for the kernel to retire a block ends two block timeouts (plus a margin) after
        the first wait began."""
        patience = 2 * self.options.block_timeout_ms / 1000 + _DRAIN_MARGIN_S
        deadline: float | None = None
        for ring in self._rings:
            budget = ring.walker.block_count + 1
            while budget > 0:
                with self._lock:
                    got = take(ring)
                    filling = got is None and ring.walker.filling()
                if got is not None:
                    budget -= 1
                    if got[1]:
                        yield got[0]
                    continue
                if not filling:
                    break
                now = time.monotonic()
                deadline = now + patience if deadline is None else deadline
                if now >= deadline:
                    break
                time.sleep(_DRAIN_NAP_S)

    def _check_socket_error(self, ring: _Ring) -> None:
        with self._lock:
            if self._closing.is_set():
                return
            code = ring.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not code or ring.interface == ANY:
            return
        try:
            socket.if_nametoindex(ring.interface)
        except OSError:
            raise SourceError(f"afpacket: interface {ring.interface} disappeared") from None

    def _collect(self) -> CaptureStats:
        stats = CaptureStats(backend=NAME, reason=self._reason)
        extra: dict[str, int] = {
            "ring_dropped": 0,
            "kernel_packets": 0,
            "freeze_q_cnt": 0,
            "user_filtered": 0,
            "ring_errors": 0,
            "vlan_restored": 0,
            "loopback_echoes": 0,
        }
        for ring in self._rings:
            with contextlib.suppress(OSError):
                ring.read_kernel_stats()
            stats.received += ring.walker.received - ring.user_filtered
            stats.bytes += ring.walker.bytes
            stats.dropped += ring.kernel_drops
            extra["ring_dropped"] += ring.kernel_drops
            extra["kernel_packets"] += ring.kernel_packets
            extra["freeze_q_cnt"] += ring.freeze_q_cnt
            extra["user_filtered"] += ring.user_filtered
            extra["ring_errors"] += ring.walker.ring_errors
            extra["vlan_restored"] += ring.walker.vlan_restored
            extra["loopback_echoes"] += ring.walker.echoes
        if self._rings:
            grown = rx_dropped(self._sysfs_names()) - self._if_dropped_base
            stats.if_dropped = max(0, grown)
        stats.extra.update(extra)
        return stats

    def _release(self) -> None:
        for ring in self._rings:
            ring.mapping.close()
            ring.sock.close()
        self._rings = []
        self._wakeup.release()

    def _sysfs_names(self) -> list[str]:
        names = [ring.interface for ring in self._rings if ring.interface != ANY]
        if any(ring.interface == ANY for ring in self._rings):
            try:
                names = [p.name for p in _SYSFS_NET.iterdir()]
            except OSError:
                names = []
        return names


def _describe_interface(name: str) -> tuple[int, int, bool]:
    """(ifindex, linktype, cooked) of an interface; `any` is index 0, cooked SLL2."""
    if name == ANY:
        return 0, LINKTYPE_LINUX_SLL2, True
    try:
        ifindex = socket.if_nametoindex(name)
    except OSError:
        raise SourceUnavailable(NAME, f"no such interface: {name}") from None
    try:
        hatype = int((_SYSFS_NET / name / "type").read_text())
    except (OSError, ValueError):
        hatype = -1
    linktype = _ARPHRD_LINKTYPES.get(hatype)
    if linktype is None:
        return ifindex, LINKTYPE_LINUX_SLL2, True
    return ifindex, linktype, False


def _loopback(name: str) -> int:
    """The ifindex of the loopback device this capture sees (`name` itself, or for `any`
    the machine's), whose sent copy of every frame the ring walk skips; 0 for none."""
    names = [name]
    if name == ANY:
        with contextlib.suppress(OSError):
            names = sorted(p.name for p in _SYSFS_NET.iterdir())
    for candidate in names:
        try:
            if int((_SYSFS_NET / candidate / "type").read_text()) == _ARPHRD_LOOPBACK:
                return socket.if_nametoindex(candidate)
        except (OSError, ValueError):
            continue
    return 0


def _bind(sock: socket.socket, ifindex: int, name: str) -> None:
    """bind() to (ETH_P_ALL, ifindex); Python's own bind cannot say ifindex 0 (`any`)."""
    address = _SOCKADDR_LL.pack(socket.AF_PACKET, socket.htons(ETH_P_ALL), ifindex, 0, 0, 0, b"")
    if _libc().bind(sock.fileno(), address, len(address)) != 0:
        code = ctypes.get_errno()
        if code in (errno.EPERM, errno.EACCES):
            raise SourceUnavailable(NAME, NEEDS_CAP)
        if code in (errno.ENODEV, errno.ENXIO):
            raise SourceUnavailable(NAME, f"no such interface: {name}")
        raise SourceUnavailable(NAME, f"cannot bind to {name}: {os.strerror(code)}")


__all__ = ["ANY", "NEEDS_CAP", "AfPacketSource", "BpfError", "rx_dropped"]
