"""The contract every packet source keeps, and the `best` chooser.

A source is opened, yields batches of frames, reports the same counters as every other
source, and is closed.  Live backends (PF_RING, AF_XDP, AF_PACKET) and the pcap reader all
speak this interface, so everything downstream is capture-independent.

`choose()` walks the backends best-first; each refusal is a `SourceUnavailable` carrying the
reason, which is logged as one line, and the first backend that opens wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from pilotfish.model import Frame

log = logging.getLogger(__name__)

# libpcap LINKTYPE_* values pilotfish decodes (see decode/link.py)
LINKTYPE_NULL = 0  # BSD loopback
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276


class SourceUnavailable(Exception):
    """A backend cannot run here; the message says why (shown to the user as is)."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason


class SourceError(Exception):
    """A source failed while running (unreadable file, interface gone)."""


@dataclass
class CaptureStats:
    """Counters every source reports, named alike everywhere.

    received: frames handed to pilotfish; dropped: frames the kernel/ring dropped for lack of
    room; if_dropped: frames the interface dropped; bytes: captured bytes handed over.
    """

    backend: str
    reason: str = ""
    received: int = 0
    dropped: int = 0
    if_dropped: int = 0
    bytes: int = 0
    extra: dict[str, int | str] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """A packet source.  `batches()` yields lists of frames until the source ends or is closed.

    A live source yields an empty list whenever nothing arrived for one poll interval (at
    most a quarter of a second), so a consumer can run its timers (release held entries,
    commit the store) while the network is quiet.  `close()` may be called from another
    thread or a signal handler; `batches()` then ends promptly.
    """

    name: str

    def open(self) -> None: ...

    def batches(self) -> Iterator[list[Frame]]: ...

    def stats(self) -> CaptureStats: ...

    def close(self) -> None: ...


@runtime_checkable
class RecordSource(Protocol):
    """A source that can also hand over its frames as ready pcap records (for `-w`)."""

    def record_linktype(self) -> int | None:
        """The records' link type, or None when this source cannot make records now."""
        ...

    def pcap_batches(
        self, snaplen: int, nanosecond: bool
    ) -> Iterator[tuple[bytes | bytearray | memoryview, int]]:
        """(records, frames) per batch, like `Source.batches()`; an item is valid until the
        next one is asked for."""
        ...


@dataclass(frozen=True)
class CaptureOptions:
    """What a live capture was asked for."""

    interfaces: Sequence[str]
    bpf: str = ""
    snaplen: int = 262144
    promiscuous: bool = False
    fanout_group: int | None = None  # processes sharing one group split flows by hash
    block_size: int = 1 << 21  # AF_PACKET TPACKET_V3 block size (ring = size x count per socket)
    block_count: int = 32
    block_timeout_ms: int = 100
    umem_frames: int = 32768  # AF_XDP: UMEM = frames x frame size (64 MiB, like the ring)
    umem_frame_size: int = 2048

    def with_buffer(self, mib: int) -> CaptureOptions:
        """The same options with `mib` MiB of kernel buffer per interface: the AF_PACKET ring
        (whole blocks, at least two) and the AF_XDP UMEM (whole frames, at least 64)."""
        if mib < 1:
            raise ValueError(f"buffer must be at least 1 MiB (got {mib})")
        size = mib << 20
        return replace(
            self,
            block_count=max(2, size // self.block_size),
            umem_frames=max(64, size // self.umem_frame_size),
        )


SourceFactory = Callable[[CaptureOptions], Source]

BEST_ORDER = ("pfring", "afxdp", "afpacket")


@dataclass
class Choice:
    """The outcome of `choose`: the opened source and why the better ones were declined."""

    source: Source
    declined: list[SourceUnavailable]


def choose(
    factories: dict[str, SourceFactory],
    options: CaptureOptions,
    wanted: str = "best",
) -> Choice:
    """Open the requested backend, or the best one available when `wanted == "best"`.

    Raises `SourceUnavailable` with the reason when a forced backend cannot run, or with every
    reason joined when no backend can.
    """
    order = BEST_ORDER if wanted == "best" else (wanted,)
    declined: list[SourceUnavailable] = []
    for name in order:
        factory = factories.get(name)
        if factory is None:
            declined.append(SourceUnavailable(name, "unknown capture backend"))
            continue
        try:
            source = factory(options)
            source.open()
        except SourceUnavailable as exc:
            log.info("capture: %s declined: %s", name, exc.reason)
            declined.append(exc)
            continue
        log.info("capture: using %s", name)
        return Choice(source, declined)
    if len(declined) == 1:
        raise declined[0]
    raise SourceUnavailable(wanted, "; ".join(str(d) for d in declined))
