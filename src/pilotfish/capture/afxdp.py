"""AF_XDP capture source ("afxdp"), passive: XSKs on mirror veths, never on watched interfaces.

For every watched interface `capture.mirror.Mirror` copies ingress and egress traffic with tc
into a dedicated veth pair; an RX-only XSK (libxdp's default program, native mode when the
driver allows it, else SKB mode; copy or zero-copy as the kernel grants) sits on the far end.
The watched interface keeps every packet, so capture never steals or delays traffic.

Receiving: the XSK fds are polled with `block_timeout_ms`; the C helper (`_xsk`, built from
`_xsk_build.py`) drains up to `BATCH` descriptors per call, copies them into one buffer and
recycles the frames into the fill ring, so Python makes one call per batch, and
`_xskframes.split_frames` cuts that buffer into frames in C (`pcap_batches()`, for capture
to a file, has `_xskframes.write_records` write it as pcap records instead, with no Python
object per frame).  After a batch smaller than
`BATCH` the reader waits `COALESCE_S` before polling again, so frames gather into batches
instead of waking it one by one (a frame waits at most that much longer; the RX ring holds
the UMEM's frame count meanwhile).  AF_XDP carries
no per-packet timestamp: every frame of a batch gets the same `clock()` value (default
`time.time`) taken when the batch was read, so a timestamp is late by the time the frame
waited in the RX ring.  Frames are Ethernet (linktype 1); super-frames arrive cut to wire
size by the mirror.  A poll timeout yields an empty list so consumers can run their idle
timers.  A non-empty `options.bpf` is compiled by libpcap and run in the kernel by the
mirror's tc filters: frames it rejects are never mirrored.

Bounds: per interface one UMEM of `umem_frames * umem_frame_size` bytes (64 MiB by default,
the AF_PACKET ring's size: with 2 KiB frames, 32768 frames of buffer) and one RX/fill ring
of the next power of two >= its frame count; one copy buffer of `BATCH` frames.  An MTU
too large for the configured frame size gets page-size frames holding the same bytes.  A
frame that does not fit a UMEM frame is dropped by the kernel and counted.
bpffs is mounted at /sys/fs/bpf when absent (libxdp's dispatcher needs it) and left mounted.

Counters: `received`/`bytes` are frames/bytes handed over; `dropped` = XSK rx_dropped +
rx_ring_full (XDP_STATISTICS); the part of it a full ring caused, `extra["ring_dropped"]`,
is rx_ring_full + rx_fill_ring_empty_descs (no free UMEM frame: the kernel counts such a
frame in rx_dropped too), at most `dropped`; the rest of rx_dropped is frames too large for
a UMEM frame.  `if_dropped` = frames the mirror veths dropped besides those (a veth with a
native XDP program counts a frame its XSK refused as an rx drop of its own: not twice);
`extra` reports the attach mode obtained (`xdp_mode` native|skb), `zerocopy` and the raw
XDP counters.

Declines (SourceUnavailable, one reason each): helper not built / libxdp not loadable, no
interface or interface "any", unknown interface, watching a pilotfish mirror link, missing
capabilities, kernel without AF_XDP, bad UMEM geometry, MTU too large for the UMEM frame.
`close()` is idempotent, thread-safe and safe in a signal handler.  While `batches()` runs it
only asks it to stop: `batches()` then hands over what the RX rings still hold (bounded by
the UMEM's frame count) and tears down itself; otherwise `close()` tears down at once.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pilotfish.capture._xskframes import split_frames, write_records
from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    CaptureOptions,
    CaptureStats,
    SourceError,
    SourceUnavailable,
)
from pilotfish.capture.mirror import (
    STATE_DIR,
    Mirror,
    MirrorError,
    interface_mtu,
    is_mirror_name,
    link_exists,
)
from pilotfish.capture.pcapfile import record_time
from pilotfish.model import Frame

log = logging.getLogger(__name__)

NAME: Final = "afxdp"
AF_XDP: Final = 44
BATCH: Final = 1024  # descriptors drained per helper call
T = TypeVar("T")
COALESCE_S: Final = 0.001  # after a batch that did not fill BATCH: wait before the next poll
XDP_PACKET_HEADROOM: Final = 256  # the kernel keeps this much of every UMEM frame
LINK_HEADER: Final = 18  # Ethernet + one VLAN tag
BPFFS: Final = "/sys/fs/bpf"
MODES: Final = {"auto": 0, "skb": 1, "native": 2}
_MODE_NAMES: Final = {1: "skb", 2: "native"}
_POLL_FAILED: Final = select.POLLERR | select.POLLHUP | select.POLLNVAL
_XDP_COUNTERS: Final = (
    "rx_dropped",
    "rx_invalid_descs",
    "tx_invalid_descs",
    "rx_ring_full",
    "rx_fill_ring_empty_descs",
    "tx_ring_empty_descs",
)

CAP_NET_ADMIN: Final = 12
CAP_NET_RAW: Final = 13
CAP_SYS_ADMIN: Final = 21
CAP_BPF: Final = 39
CAPS_REASON: Final = (
    "missing capability: needs CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN), "
    "and CAP_NET_RAW for the AF_XDP socket"
)


def load_helper() -> tuple[Any, Any]:
    """The compiled helper's (ffi, lib), or SourceUnavailable with the reason."""
    try:
        xsk = importlib.import_module("pilotfish.capture._xsk")
    except ImportError as exc:
        text = str(exc)
        if "libxdp" in text or "libbpf" in text:
            raise SourceUnavailable(NAME, f"libxdp not loadable: {text}") from exc
        raise SourceUnavailable(
            NAME, "AF_XDP helper not built (reinstall pilotfish with libxdp-dev present)"
        ) from exc
    return xsk.ffi, xsk.lib


def missing_capabilities(cap_eff: int) -> bool:
    """True when an effective capability set cannot run the AF_XDP source."""
    admin, raw, bpf, sys_admin = (
        bool(cap_eff >> cap & 1) for cap in (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SYS_ADMIN)
    )
    return not (admin and raw and (bpf or sys_admin))


def effective_capabilities(status_text: str) -> int:
    """CapEff from the text of /proc/<pid>/status (0 when absent or malformed)."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return 0
    return 0


def socket_errno_reason(err: int) -> str:
    """The decline reason for socket(AF_XDP) failing with this errno."""
    if err in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
        return "kernel without AF_XDP (socket(AF_XDP) failed: address family not supported)"
    if err in (errno.EPERM, errno.EACCES):
        return CAPS_REASON
    return f"socket(AF_XDP) failed: {os.strerror(err)}"


def check_frame_geometry(mtu: int, frame_size: int, page_size: int) -> str | None:
    """Why an interface MTU / UMEM frame size pair cannot work, or None when it can."""
    if frame_size < 2048 or frame_size > page_size or frame_size & (frame_size - 1):
        return (
            f"UMEM frame size {frame_size} not supported "
            f"(a power of two from 2048 to the page size {page_size})"
        )
    if mtu + LINK_HEADER > frame_size - XDP_PACKET_HEADROOM:
        return f"MTU {mtu} too large for UMEM frame size {frame_size}"
    return None


def umem_geometry(mtu: int, frames: int, frame_size: int, page_size: int) -> tuple[int, int]:
    """(frames, frame size) of a UMEM for this MTU: as configured when the MTU fits, else
    page-size frames holding the same bytes; ValueError with the reason when neither fits."""
    why = check_frame_geometry(mtu, frame_size, page_size)
    if why is None:
        return frames, frame_size
    unsupported = check_frame_geometry(0, frame_size, page_size)
    if unsupported is not None:
        raise ValueError(unsupported)
    if frame_size < page_size and check_frame_geometry(mtu, page_size, page_size) is None:
        return max(64, frames * frame_size // page_size), page_size
    raise ValueError(check_frame_geometry(mtu, max(frame_size, page_size), page_size) or why)


def xdp_drops(counters: dict[str, int]) -> tuple[int, int]:
    """(dropped, ring_dropped) from the XDP_STATISTICS counters (see the module docstring)."""
    dropped = counters["rx_dropped"] + counters["rx_ring_full"]
    ring = counters["rx_ring_full"] + counters["rx_fill_ring_empty_descs"]
    return dropped, min(ring, dropped)


@dataclass
class _Socket:
    """One XSK on the mirror of one watched interface."""

    mirror: Mirror
    handle: Any
    fd: int
    mode: str
    zerocopy: bool


class AfXdpSource:
    """Passive AF_XDP capture on `options.interfaces` (see the module docstring)."""

    name = NAME

    def __init__(
        self,
        options: CaptureOptions,
        *,
        mode: str = "auto",
        mount_bpffs: bool = True,
        state_dir: str = STATE_DIR,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}")
        self.options = options
        self._mode = mode
        self._mount_bpffs = mount_bpffs
        self._state_dir = state_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._iterating = False
        self._stop = False
        self._sockets: list[_Socket] = []
        self._ffi: Any = None
        self._lib: Any = None
        self._bytecode = ""  # the capture filter, run by the mirror's tc filters
        self._stats = CaptureStats(backend=NAME)
        self._umem = (options.umem_frames, options.umem_frame_size)
        self._bpffs = "unknown"

    # --- Source protocol -------------------------------------------------------------------

    def open(self) -> None:
        if self._sockets or self._stop:
            raise SourceError("afxdp: open() on a source that is open or closed")
        self._ffi, self._lib = load_helper()
        names = self._check_interfaces()
        self._check_privileges()
        self._check_mtus(names)
        self._prepare_filter()
        self._bpffs = self._ensure_bpffs()
        try:
            for ifname in names:
                self._sockets.append(self._open_one(ifname))
        except BaseException:
            self._teardown()
            raise
        first = self._sockets[0]
        self._stats.reason = (
            f"AF_XDP {first.mode} mode, {'zero-copy' if first.zerocopy else 'copy'}, "
            f"via tc mirror of {', '.join(names)}"
        )

    def batches(self) -> Iterator[list[Frame]]:
        snaplen = self.options.snaplen
        frames: list[Frame] = []

        def take(buf: bytearray, lens: memoryview, n: int) -> int:
            return split_frames(buf, lens, n, self._clock(), LINKTYPE_ETHERNET, snaplen, frames)

        def item() -> list[Frame]:
            nonlocal frames
            batch, frames = frames, []
            return batch

        return self._batches(take, item)

    def record_linktype(self) -> int | None:
        """Ethernet: the mirrored frames can go to a pcap file as ready records."""
        return LINKTYPE_ETHERNET

    def pcap_batches(self, snaplen: int, nanosecond: bool) -> Iterator[tuple[memoryview, int]]:
        """Like `batches()`, but each batch comes as classic pcap records (cut to `snaplen`,
        one timestamp per batch as in `batches()`) with its frame count, written in C into
        one reused buffer: an item is valid until the next one is asked for."""
        frame_size = self._umem[1]
        out = bytearray(max(1, len(self._sockets)) * BATCH * (frame_size + 16))
        view = memoryview(out)
        end = [0, 0]  # bytes and frames written since the last item
        unit = 1_000_000_000 if nanosecond else 1_000_000

        def take(buf: bytearray, lens: memoryview, n: int) -> int:
            sec, frac = record_time(self._clock(), unit)
            at, count, nbytes = write_records(buf, lens, n, sec, frac, snaplen, out, end[0])
            end[0] = at
            end[1] += count
            return nbytes

        def item() -> tuple[memoryview, int]:
            batch = (view[: end[0]], end[1])
            end[0] = end[1] = 0
            return batch

        return self._batches(take, item)

    def _batches(
        self, take: Callable[[bytearray, memoryview, int], int], item: Callable[[], T]
    ) -> Iterator[T]:
        """`take(buf, lens, n)` gets each RX batch the helper copied out (the frames back to
        back, their lengths) and returns its captured bytes; `item()` is what is handed over
        after each poll (empty when nothing came)."""
        if self._ffi is None:
            raise SourceError("afxdp: batches() before open()")
        self._iterating = True
        try:
            yield from self._read(take, item)
        finally:
            self._iterating = False
            self.close()

    def _read(
        self, take: Callable[[bytearray, memoryview, int], int], item: Callable[[], T]
    ) -> Iterator[T]:
        """Batches as they come; after close(), what the RX rings still hold, then the end."""
        poller = select.poll()
        by_fd = {s.fd: s for s in self._sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        frames, frame_size = self._umem
        cap = BATCH * frame_size
        buf = bytearray(cap)
        lens = self._ffi.new("uint32_t[]", BATCH)
        c_buf = self._ffi.from_buffer(buf)
        lens_view = memoryview(self._ffi.buffer(lens)).cast("I")
        drain_budget = len(by_fd) * (frames // BATCH + 1)
        st = self._stats
        while True:
            stopping = self._stop
            got = 0
            full = False
            with self._lock:
                if not self._sockets:
                    return
                if stopping:  # no waiting: whatever the rings hold
                    ready = [(fd, select.POLLIN) for fd in by_fd]
                else:
                    ready = poller.poll(self.options.block_timeout_ms)
                    if not ready:
                        self._check_alive()
                for fd, events in ready:
                    if events & _POLL_FAILED:
                        raise SourceError(f"afxdp: socket on {by_fd[fd].mirror.veth_b} failed")
                    n = self._lib.pf_xsk_recv(by_fd[fd].handle, BATCH, c_buf, cap, lens)
                    if n > 0:
                        st.bytes += take(buf, lens_view, n)
                        st.received += n
                        got += n
                        full = full or n == BATCH
            if stopping:
                drain_budget -= 1
                if not got or drain_budget < 0:
                    return
            yield item()
            if got and not full and not self._stop:
                time.sleep(COALESCE_S)  # let frames gather: one wake-up per batch, not per frame

    def stats(self) -> CaptureStats:
        with self._lock:
            self._refresh_counters()
            st = self._stats
            return CaptureStats(
                backend=NAME,
                reason=st.reason,
                received=st.received,
                dropped=st.dropped,
                if_dropped=st.if_dropped,
                bytes=st.bytes,
                extra={**st.extra, "bpffs": self._bpffs},
            )

    def close(self) -> None:
        self._stop = True
        if self._iterating:
            return  # batches() hands over what the rings hold, then finishes the close
        with self._lock:
            self._teardown()

    def __enter__(self) -> AfXdpSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- open steps ------------------------------------------------------------------------

    def _check_interfaces(self) -> list[str]:
        names = list(dict.fromkeys(self.options.interfaces))
        if not names:
            raise SourceUnavailable(NAME, "no interface given")
        for ifname in names:
            if ifname == "any":
                raise SourceUnavailable(
                    NAME, "interface 'any' is not supported by AF_XDP (name real interfaces)"
                )
            if is_mirror_name(ifname):
                raise SourceUnavailable(NAME, f"{ifname} is a pilotfish mirror link")
            try:
                socket.if_nametoindex(ifname)
            except OSError:
                raise SourceUnavailable(NAME, f"unknown interface {ifname!r}") from None
            if os.path.isdir(f"{self._sysfs}/{ifname}/bridge"):
                raise SourceUnavailable(
                    NAME,
                    f"{ifname} is a bridge: frames it forwards between its ports never pass "
                    "its tc hooks, so a mirror would miss them (name the member ports instead)",
                )
        return names

    _sysfs = "/sys/class/net"

    def _check_privileges(self) -> None:
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as f:
                cap_eff = effective_capabilities(f.read())
        except OSError:
            cap_eff = 0
        if missing_capabilities(cap_eff):
            raise SourceUnavailable(NAME, CAPS_REASON)
        try:
            socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()
        except OSError as exc:
            raise SourceUnavailable(NAME, socket_errno_reason(exc.errno or 0)) from None

    def _check_mtus(self, names: list[str]) -> None:
        """Settle the UMEM geometry every interface's MTU fits (or decline with the reason)."""
        page = os.sysconf("SC_PAGESIZE")
        frames, size = self.options.umem_frames, self.options.umem_frame_size
        for ifname in names:
            try:
                frames, size = umem_geometry(interface_mtu(ifname), frames, size, page)
            except ValueError as exc:
                raise SourceUnavailable(NAME, f"{ifname}: {exc}") from None
        self._umem = (frames, size)

    def _prepare_filter(self) -> None:
        if not self.options.bpf:
            return
        from pilotfish.capture.bpf import BpfError, compile_filter

        try:
            program = compile_filter(self.options.bpf, LINKTYPE_ETHERNET, self.options.snaplen)
            self._bytecode = program.tc_bytecode()
        except (BpfError, OSError) as exc:
            raise SourceUnavailable(NAME, f"filter not usable: {exc}") from exc

    def _ensure_bpffs(self) -> str:
        if os.path.ismount(BPFFS):
            return "mounted"
        if not self._mount_bpffs:
            return "absent (libxdp runs without its dispatcher)"
        cmd = ["mount", "-t", "bpf", "bpf", BPFFS]
        try:
            subprocess.run(cmd, capture_output=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("afxdp: cannot mount bpffs (%s); libxdp runs without its dispatcher", exc)
            return "absent (libxdp runs without its dispatcher)"
        return "mounted by pilotfish"

    def _open_one(self, ifname: str) -> _Socket:
        mirror = Mirror(ifname, state_dir=self._state_dir, bytecode=self._bytecode)
        try:
            mirror.install()
        except (MirrorError, OSError) as exc:
            raise SourceUnavailable(NAME, f"cannot mirror {ifname}: {exc}") from exc
        for item in mirror.stale:
            log.warning("afxdp: replaced stale %s", item)
        ffi, lib = self._ffi, self._lib
        out = ffi.new("struct pf_xsk **")
        err = ffi.new("char[]", 256)
        frames, size = self._umem
        rc = lib.pf_xsk_open(
            mirror.veth_b.encode(), 0, frames, size, MODES[self._mode], out, err, 256
        )
        if rc != 0:
            mirror.remove()
            text = ffi.string(err).decode(errors="replace")
            if -rc in (errno.EPERM, errno.EACCES):
                raise SourceUnavailable(NAME, f"{CAPS_REASON} ({text})")
            raise SourceUnavailable(NAME, f"{ifname}: {text or os.strerror(-rc)}")
        fd, mode, zc = ffi.new("int *"), ffi.new("int *"), ffi.new("int *")
        lib.pf_xsk_info(out[0], fd, mode, zc)
        sock = _Socket(mirror, out[0], fd[0], _MODE_NAMES.get(mode[0], "?"), bool(zc[0]))
        log.info("afxdp: %s mirrored to %s, XSK in %s mode", ifname, mirror.veth_b, sock.mode)
        return sock

    # --- receive and teardown --------------------------------------------------------------

    def _check_alive(self) -> None:
        """Between polls: a deleted mirror or watched interface ends the capture clearly."""
        for s in self._sockets:
            for name in (s.mirror.ifname, s.mirror.veth_b):
                if not link_exists(name):
                    raise SourceError(f"afxdp: interface {name} disappeared")

    def _refresh_counters(self) -> None:
        """Read the kernel counters of the open sockets (kept after close)."""
        if not self._sockets:
            return
        totals = [0] * 6
        out = self._ffi.new("uint64_t[]", 6)
        mirror_dropped = 0
        for s in self._sockets:
            mine = [0] * 6
            if self._lib.pf_xsk_stats(s.handle, out) == 0:
                mine = [int(out[i]) for i in range(6)]
            totals = [a + b for a, b in zip(totals, mine, strict=True)]
            refused = xdp_drops(dict(zip(_XDP_COUNTERS, mine, strict=True)))[0]
            # in native mode the veth counts a frame the XSK refused as its own rx drop too
            mirror_dropped += max(0, s.mirror.dropped() - (refused if s.mode == "native" else 0))
        st = self._stats
        counters = dict(zip(_XDP_COUNTERS, totals, strict=True))
        st.dropped, ring_dropped = xdp_drops(counters)
        st.if_dropped = mirror_dropped
        st.extra = {"ring_dropped": ring_dropped, **counters}
        st.extra["xdp_mode"] = ",".join(sorted({s.mode for s in self._sockets}))
        st.extra["zerocopy"] = int(all(s.zerocopy for s in self._sockets))
        st.extra["mirrors"] = ",".join(s.mirror.veth_b for s in self._sockets)

    def _teardown(self) -> None:
        self._refresh_counters()
        while self._sockets:
            s = self._sockets.pop()
            self._lib.pf_xsk_close(s.handle)
            try:
                s.mirror.remove()
            except (MirrorError, OSError) as exc:
                log.warning("afxdp: cleanup of %s incomplete: %s", s.mirror.veth_a, exc)
