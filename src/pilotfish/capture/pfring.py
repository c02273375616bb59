"""PF_RING live capture through libpfring's C API (ctypes), one ring per interface.

The library is found from the `library` argument, else `PILOTFISH_PFRING_LIBRARY`, else the
system's `pfring` library; each ring is opened with `pfring_open` (PF_RING_PROMISC when asked,
PF_RING_TIMESTAMP always), named with `pfring_set_application_name`, given the capture filter
with `pfring_set_bpf_filter` and started with `pfring_enable_ring`.  Frames are Ethernet.

`batches()` drains each ring without waiting (`pfring_recv` in zero-copy mode, buffer_len 0)
up to `MAX_BATCH` frames: the compiled helper `_pfdrain` (built from `_pfdrain_build.py`)
calls `pfring_recv` in a C loop and copies the frames back to back into one buffer, so
Python makes one call per ring per batch, not one per packet.  `pcap_batches()` is the same
for capture to a file: the loop writes classic pcap records straight into its buffer, with
no Python object per frame.  When every ring is empty it waits
in poll() on the rings' selectable descriptors and a wake-up pipe, with a short timeout, so
`close()` (safe twice, from any thread or a signal handler) ends it promptly.  A library that
offers no selectable descriptor is waited on with `pfring_poll` for the same short time
instead.  After `close()`, `batches()` first hands over what the rings still hold (at most
`DRAIN_BATCHES` batches), then releases them; `close()` releases them itself when no
`batches()` is running.

Counters: `received`/`bytes` as handed over; `dropped` is the sum of `pfring_stats().drop`
(cumulative in the library), packets PF_RING dropped because the ring was full, so all of it
is also `extra["ring_dropped"]`; `extra["shunt"]` its shunted packets; frames whose header says
caplen > len or whose pointer is NULL are skipped and counted in `extra["bad_headers"]`;
failed `pfring_recv` calls are counted in `extra["recv_errors"]`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import importlib
import os
import select
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    CaptureOptions,
    CaptureStats,
    SourceError,
    SourceUnavailable,
)
from pilotfish.capture.closing import RingClosing
from pilotfish.model import Frame

NAME: Final = "pfring"
T = TypeVar("T")
ENV_LIBRARY: Final = "PILOTFISH_PFRING_LIBRARY"
NOT_FOUND: Final = "libpfring not found (install PF_RING userland library)"
NO_MODULE: Final = "pf_ring kernel module not loaded"
NEEDS_CAP: Final = "needs CAP_NET_RAW: run as root or grant the capability"
APP_NAME: Final = b"pilotfish"
PROC_PF_RING: Final = Path("/proc/net/pf_ring")

PF_RING_PROMISC: Final = 1 << 3
PF_RING_TIMESTAMP: Final = 1 << 4
MAX_BATCH: Final = 4096
BATCH_BUFFER: Final = 8 << 20  # bytes of frames per batch (a batch ends before overflowing)
DRAIN_BATCHES: Final = 64  # after close(): at most this many more batches are handed over
_POLL_MS: Final = 100

# pfring_stat: recv, drop, shunt (u_int64 each)
PFRING_STAT: Final = struct.Struct("=QQQ")


def find_library(library: str | None = None) -> str:
    """The libpfring to load: argument, then environment, then the system search."""
    name = library or os.environ.get(ENV_LIBRARY) or ctypes.util.find_library("pfring")
    if not name:
        raise SourceUnavailable(NAME, NOT_FOUND)
    return name


def load_helper() -> tuple[Any, Any]:
    """The compiled receive loop's (ffi, lib), or SourceUnavailable with the reason."""
    try:
        mod = importlib.import_module("pilotfish.capture._pfdrain")
    except ImportError as exc:
        raise SourceUnavailable(
            NAME, f"PF_RING receive helper not built (reinstall pilotfish): {exc}"
        ) from exc
    return mod.ffi, mod.lib


def load_library(name: str) -> ctypes.CDLL:
    """Load libpfring and declare the functions pilotfish calls."""
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SourceUnavailable(NAME, f"{NOT_FOUND}: {exc}") from exc
    vp, u32 = ctypes.c_void_p, ctypes.c_uint32
    signatures: dict[str, tuple[tuple[type, ...], type | None]] = {
        "pfring_open": ((ctypes.c_char_p, u32, u32), vp),
        "pfring_set_application_name": ((vp, ctypes.c_char_p), ctypes.c_int),
        "pfring_set_bpf_filter": ((vp, ctypes.c_char_p), ctypes.c_int),
        "pfring_enable_ring": ((vp,), ctypes.c_int),
        "pfring_recv": (
            (vp, ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint, ctypes.c_char_p, ctypes.c_uint8),
            ctypes.c_int,
        ),
        "pfring_stats": ((vp, ctypes.c_char_p), ctypes.c_int),
        "pfring_get_selectable_fd": ((vp,), ctypes.c_int),
        "pfring_poll": ((vp, ctypes.c_uint), ctypes.c_int),
        "pfring_close": ((vp,), None),
    }
    for func_name, (argtypes, restype) in signatures.items():
        try:
            func = getattr(lib, func_name)
        except AttributeError as exc:
            raise SourceUnavailable(NAME, f"{name} lacks {func_name}") from exc
        func.argtypes = argtypes
        func.restype = restype
    return lib


def open_reason(code: int, device: str) -> str:
    """Why `pfring_open(device)` returned NULL, from its errno."""
    if code in (errno.EPERM, errno.EACCES):
        return NEEDS_CAP
    if code == errno.EAFNOSUPPORT or not PROC_PF_RING.exists():
        return NO_MODULE
    if code in (errno.ENODEV, errno.ENXIO):
        return f"no such interface: {device}"
    return f"pfring_open({device}) failed: {os.strerror(code) if code else 'unknown error'}"


class _Ring:
    """One opened pfring handle and the buffers reused for every packet."""

    def __init__(self, lib: ctypes.CDLL, handle: int, device: str, ffi: Any) -> None:
        self.lib = lib
        self.handle = handle
        self.device = device
        self.fd = lib.pfring_get_selectable_fd(handle)
        # the same handle and pfring_recv, as the compiled receive loop takes them
        self.c_handle = ffi.cast("void *", handle)
        self.c_recv = ffi.cast("void *", ctypes.cast(lib.pfring_recv, ctypes.c_void_p).value)
        self.stat = ctypes.create_string_buffer(PFRING_STAT.size)
        self.drop = 0
        self.shunt = 0

    def read_stats(self) -> None:
        if self.lib.pfring_stats(self.handle, self.stat) == 0:
            _recv, self.drop, self.shunt = PFRING_STAT.unpack(self.stat.raw)


class _Buffers:
    """The helper's output arrays for one batch, allocated once per source."""

    def __init__(self, ffi: Any) -> None:
        self.data = ffi.new("uint8_t[]", BATCH_BUFFER)
        self.caplens = ffi.new("uint32_t[]", MAX_BATCH)
        self.wirelens = ffi.new("uint32_t[]", MAX_BATCH)
        self.stamps = ffi.new("double[]", MAX_BATCH)
        self._view = memoryview(ffi.buffer(self.data))
        self._caplens = memoryview(ffi.buffer(self.caplens)).cast("I")
        self._wirelens = memoryview(ffi.buffer(self.wirelens)).cast("I")
        self._stamps = memoryview(ffi.buffer(self.stamps)).cast("d")

    def collect(self, out: list[Frame], n: int) -> int:
        """Append the `n` frames the helper wrote to `out`; return their captured bytes."""
        sizes = self._caplens[:n].tolist()
        total = sum(sizes)
        data = bytes(self._view[:total])
        append = out.append
        off = 0
        for size, wirelen, ts in zip(
            sizes, self._wirelens[:n].tolist(), self._stamps[:n].tolist(), strict=True
        ):
            append((ts, LINKTYPE_ETHERNET, data[off : off + size], wirelen))
            off += size
        return total


class PfRingSource(RingClosing):
    """Live capture through libpfring (see the module docstring)."""

    name = NAME

    def __init__(self, options: CaptureOptions, library: str | None = None) -> None:
        super().__init__()
        self.options = options
        self._library = library
        self._lib: ctypes.CDLL | None = None
        self._ffi: Any = None
        self._helper: Any = None
        self._rings: list[_Ring] = []
        self._received = 0
        self._bytes = 0
        self._counts: Any = None  # the helper's bad headers and failed recv calls (cumulative)
        self._reason = ""
        self._buffers: _Buffers | None = None

    def open(self) -> None:
        self._ffi, self._helper = load_helper()
        self._counts = self._ffi.new("uint64_t[2]")
        lib = self._lib = load_library(find_library(self._library))
        devices = list(self.options.interfaces) or ["any"]
        try:
            for device in devices:
                self._rings.append(self._open_ring(lib, device))
        except BaseException:
            self._release()
            raise
        self._wakeup.open()
        self._reason = f"libpfring on {','.join(devices)}"

    def _open_ring(self, lib: ctypes.CDLL, device: str) -> _Ring:
        flags = PF_RING_TIMESTAMP | (PF_RING_PROMISC if self.options.promiscuous else 0)
        ctypes.set_errno(0)
        handle = lib.pfring_open(device.encode(), self.options.snaplen, flags)
        if not handle:
            raise SourceUnavailable(NAME, open_reason(ctypes.get_errno(), device))
        ring = _Ring(lib, handle, device, self._ffi)
        try:
            lib.pfring_set_application_name(handle, APP_NAME)
            if self.options.bpf and lib.pfring_set_bpf_filter(handle, self.options.bpf.encode()):
                raise SourceUnavailable(
                    NAME, f"pfring_set_bpf_filter refused {self.options.bpf!r} on {device}"
                )
            if lib.pfring_enable_ring(handle) != 0:
                raise SourceUnavailable(NAME, f"pfring_enable_ring failed on {device}")
        except BaseException:
            lib.pfring_close(handle)
            raise
        return ring

    def batches(self) -> Iterator[list[Frame]]:
        return self._batches(self._drain, list)

    def record_linktype(self) -> int | None:
        """Ethernet: every ring's frames can go to a pcap file as ready records."""
        return LINKTYPE_ETHERNET

    def pcap_batches(self, snaplen: int, nanosecond: bool) -> Iterator[tuple[memoryview, int]]:
        """Like `batches()`, but each batch comes as classic pcap records (cut to `snaplen`)
        with its frame count, written by the compiled loop into one reused buffer: an item is
        valid until the next one is asked for."""
        if self._ffi is None:
            raise SourceError("pfring: pcap_batches() before open()")
        buf, used = self._ffi.new("uint8_t[]", BATCH_BUFFER), self._ffi.new("size_t *")
        view = memoryview(self._ffi.buffer(buf))

        def drain() -> tuple[tuple[memoryview, int], int]:
            got = self._drain_records(buf, used, snaplen, nanosecond)
            return (view[: used[0]], got), got

        return self._batches(drain, lambda: (memoryview(b""), 0))

    def _batches(self, drain: Callable[[], tuple[T, int]], idle: Callable[[], T]) -> Iterator[T]:
        """What `drain()` takes from the rings -> (item, frames), until closed; `idle()` when
        nothing arrived for a poll interval."""
        if not self._rings and not self._closing.is_set():
            raise SourceError("pfring: batches() before open()")
        self._iterating = True
        try:
            yield from self._read(drain, idle)
            for _ in range(DRAIN_BATCHES):  # after close(): what the rings still hold
                with self._lock:
                    item, count = drain()
                if not count:
                    break
                yield item
        finally:
            self._iterating = False
            if self._closing.is_set():
                self._finish()

    def _read(self, drain: Callable[[], tuple[T, int]], idle: Callable[[], T]) -> Iterator[T]:
        poller = select.poll()
        for ring in self._rings:
            if ring.fd >= 0:
                poller.register(ring.fd, select.POLLIN)
        if self._wakeup.fd >= 0:
            poller.register(self._wakeup.fd, select.POLLIN)
        selectable = all(ring.fd >= 0 for ring in self._rings)
        while not self._closing.is_set():
            with self._lock:
                item, count = drain()
            if count:
                yield item
                continue
            if selectable:
                quiet = not poller.poll(_POLL_MS)
            else:
                with self._lock:
                    quiet = bool(self._rings) and (
                        self._rings[0].lib.pfring_poll(self._rings[0].handle, _POLL_MS) <= 0
                    )
            if quiet and not self._closing.is_set():
                yield idle()  # let the consumer run its timers

    def _drain_records(self, buf: Any, used: Any, snaplen: int, nanosecond: bool) -> int:
        """Up to MAX_BATCH frames from the rings as pcap records in `buf`, their end in
        `used[0]`, without waiting; the number of frames."""
        snap = min(snaplen, BATCH_BUFFER // 2)
        taken = 0
        end = 0
        for ring in self._rings:
            room = MAX_BATCH - taken
            if room <= 0:
                break
            n = self._helper.pf_ring_records(
                ring.c_recv, ring.c_handle, room, snap, nanosecond, buf + end,
                BATCH_BUFFER - end, used, self._counts,
            )  # fmt: skip
            taken += n
            end += int(used[0])
        used[0] = end
        self._received += taken
        self._bytes += end - 16 * taken
        return taken

    def _drain(self) -> tuple[list[Frame], int]:
        """Up to MAX_BATCH frames from the rings, without waiting (and their count)."""
        frames: list[Frame] = []
        buffers = self._buffers
        if buffers is None:
            buffers = self._buffers = _Buffers(self._ffi)
        snap = min(self.options.snaplen, BATCH_BUFFER)
        for ring in self._rings:
            room = MAX_BATCH - len(frames)
            if room <= 0:
                break
            n = self._helper.pf_ring_drain(
                ring.c_recv,
                ring.c_handle,
                room,
                snap,
                buffers.data,
                BATCH_BUFFER,
                buffers.caplens,
                buffers.wirelens,
                buffers.stamps,
                self._counts,
            )
            if n > 0:
                self._bytes += buffers.collect(frames, n)
        self._received += len(frames)
        return frames, len(frames)

    def _collect(self) -> CaptureStats:
        for ring in self._rings:
            ring.read_stats()
        dropped = sum(ring.drop for ring in self._rings)
        bad, failed = (0, 0) if self._counts is None else (int(n) for n in self._counts)
        return CaptureStats(
            backend=NAME,
            reason=self._reason,
            received=self._received,
            dropped=dropped,
            bytes=self._bytes,
            extra={
                "ring_dropped": dropped,
                "shunt": sum(ring.shunt for ring in self._rings),
                "bad_headers": bad,
                "recv_errors": failed,
            },
        )

    def _release(self) -> None:
        for ring in self._rings:
            ring.lib.pfring_close(ring.handle)
        self._rings = []
        self._wakeup.release()
