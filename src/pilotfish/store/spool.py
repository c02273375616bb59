"""The raw-packet spool: captured frames in bounded pcap segments, exported per flow.

`PcapSpool(directory, limit)` implements `store.base.PacketSpool`.  `write(frames)` appends
frames to the current segment, a classic pcap file (`NNNNNNNN.pcap`, written with
`PcapWriter`), and notes in a small index the segment's link type, time range and the set
of flows seen (TCP/UDP 5-tuples in both directions, from `decode.Decoder`, so tunnelled
traffic is indexed by its inner flow).  A segment is closed, and its index saved beside it
(`NNNNNNNN.idx`, msgpack), when it reaches `segment_bytes` (8 MiB, at most a quarter of the
limit) or when the link type changes.  On open, existing segments are kept; a segment
without an index (the process died) has it rebuilt from the file.

Frames whose timestamp a pcap record cannot hold (negative, NaN, past 2106) are skipped and
counted (`rejected`).

Read-only mode (`readonly=True`, the API process while a capture process writes): nothing
is written, created or deleted.  Every `export` and `size_bytes` lists the directory again:
closed segments (those with an index) are indexed once and cached; a segment without an
index is the one the writer is filling (it `flush()`es it at least once a second) and is
indexed in memory on each export; segments the writer deleted meanwhile are skipped.

Bounds: the segments and indexes together stay under `limit` bytes; the oldest segment is
deleted first (`counters()["dropped_segments"]`).  Frames longer than the snaplen (256 KiB)
are cut to it.  The index holds one key per flow per segment.

`export(streams, out)` writes one classic pcap with exactly the frames of those flows, both
directions, whose timestamps lie in [first_ts - margin, last_ts + margin] of a matching
StreamRef (`margin` defaults to 1 s so the TCP handshake and teardown around the entries are
included; 0 gives the bare span), in timestamp order.  Only segments whose time range and
flow set match are read.  Frames of a link type other than the first exported frame's are
skipped and counted (`export_skipped`); IP fragments that do not complete a datagram carry
no ports and are not exported.  Memory: the matching frames are held while sorting.
"""

from __future__ import annotations

import heapq
import ipaddress
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec

from pilotfish.capture.pcapfile import DEFAULT_SNAPLEN, PcapFileSource, PcapFormatError, PcapWriter
from pilotfish.config import DecodeLimits
from pilotfish.decode.decoder import Decoder
from pilotfish.model import IPPROTO_TCP, IPPROTO_UDP, Frame
from pilotfish.store.base import StreamRef

SEGMENT_BYTES: Final = 8 * 1024 * 1024
_PCAP_HEADER: Final = 24
_RECORD_HEADER: Final = 16
_LINKTYPE_ETHERNET: Final = 1
_MAX_TS: Final = float(1 << 32)
_TRANSPORTS: Final = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}

FlowKey = tuple[bytes, int, bytes, int, int]
"""Direction-free flow key: (lower addr, its port, higher addr, its port, ip proto)."""


class SegmentIndex(msgspec.Struct):
    """What a segment holds: link type, time range, frame count and flows seen."""

    linktype: int
    first_ts: float = 0.0
    last_ts: float = 0.0
    frames: int = 0
    flows: set[FlowKey] = set()


_INDEX_ENCODER: Final = msgspec.msgpack.Encoder()
_INDEX_DECODER: Final = msgspec.msgpack.Decoder(SegmentIndex)


def flow_key(proto: int, a: bytes, a_port: int, b: bytes, b_port: int) -> FlowKey:
    """The same key for both directions of a flow."""
    if (a, a_port) <= (b, b_port):
        return (a, a_port, b, b_port, proto)
    return (b, b_port, a, a_port, proto)


def key_of(ref: StreamRef) -> FlowKey:
    """The flow key of a StreamRef; ValueError for a bad address or transport."""
    proto = _TRANSPORTS.get(ref.transport)
    if proto is None:
        raise ValueError(f"unknown transport {ref.transport!r}")
    client = ipaddress.ip_address(ref.client_ip).packed
    server = ipaddress.ip_address(ref.server_ip).packed
    return flow_key(proto, client, ref.client_port, server, ref.server_port)


class _Segment:
    __slots__ = ("index", "number", "path", "size")

    def __init__(self, number: int, path: Path, index: SegmentIndex, size: int) -> None:
        self.number = number
        self.path = path
        self.index = index
        self.size = size


class PcapSpool:
    """Bounded pcap segments with per-segment flow indexes (see the module docstring)."""

    def __init__(
        self,
        directory: Path | str,
        limit: int = 256 * 1024 * 1024,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        margin: float = 1.0,
        decode_limits: DecodeLimits | None = None,
        readonly: bool = False,
    ) -> None:
        if limit < 4 * 4096:
            raise ValueError("spool limit must be at least 16 KiB")
        self.directory = Path(directory)
        self.readonly = readonly
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self.segment_bytes = max(4096, min(segment_bytes, limit // 4))
        self.margin = margin
        self._limits = decode_limits or DecodeLimits()
        self._decoder = Decoder(self._limits)
        self._closed: list[_Segment] = []
        self._current: _Segment | None = None
        self._writer: PcapWriter | None = None
        self._counters = dict.fromkeys(
            ("frames", "rejected", "dropped_segments", "exported", "export_skipped"), 0
        )
        self._cached: dict[int, SegmentIndex] = {}  # read-only mode: closed segments seen
        if not readonly:
            self._recover()

    # --- writing ------------------------------------------------------------------------

    def write(self, frames: Iterable[Frame]) -> None:
        """Append frames (timestamp, linktype, data, wire length) to the spool."""
        if self.readonly:
            raise PermissionError("this spool was opened read-only")
        decode = self._decoder.decode
        for ts, linktype, data, wirelen in frames:
            segment = self._current
            if segment is None or segment.index.linktype != linktype:
                segment = self._roll(linktype)
            assert self._writer is not None
            if not 0 <= ts < _MAX_TS:  # NaN too: a pcap record cannot hold it
                self._counters["rejected"] += 1
                continue
            self._writer.write(ts, data, wirelen)
            index = segment.index
            if index.frames == 0 or ts < index.first_ts:
                index.first_ts = ts
            index.last_ts = max(index.last_ts, ts)
            index.frames += 1
            segment.size += _RECORD_HEADER + min(len(data), DEFAULT_SNAPLEN)
            packet = decode(ts, linktype, data)
            if packet is not None:
                index.flows.add(flow_key(packet[0], packet[1], packet[2], packet[3], packet[4]))
            if segment.size >= self.segment_bytes:
                self._close_current()
            self._counters["frames"] += 1
        self._enforce_limit()

    def flush(self) -> None:
        """Push the current segment's frames to the file, where readers see them."""
        if self._writer is not None:
            self._writer.flush()

    def _roll(self, linktype: int) -> _Segment:
        self._close_current()
        number = self._next_number()
        path = self.directory / f"{number:08d}.pcap"
        self._writer = PcapWriter(path, linktype)
        self._current = _Segment(number, path, SegmentIndex(linktype, flows=set()), _PCAP_HEADER)
        return self._current

    def _next_number(self) -> int:
        numbers = [s.number for s in self._closed]
        if self._current is not None:
            numbers.append(self._current.number)
        return max(numbers, default=0) + 1

    def _close_current(self) -> None:
        segment, writer = self._current, self._writer
        if segment is None or writer is None:
            return
        writer.close()
        idx = segment.path.with_suffix(".idx")
        data = _INDEX_ENCODER.encode(segment.index)
        idx.write_bytes(data)
        segment.size = _file_size(segment.path) + len(data)
        self._closed.append(segment)
        self._current = None
        self._writer = None

    def _enforce_limit(self) -> None:
        while self._closed and self.size_bytes() > self.limit:
            oldest = self._closed.pop(0)
            oldest.path.unlink(missing_ok=True)
            oldest.path.with_suffix(".idx").unlink(missing_ok=True)
            self._counters["dropped_segments"] += 1

    # --- export -------------------------------------------------------------------------

    def export(self, streams: Sequence[StreamRef], out: BinaryIO | Any) -> int:
        """Write the frames of `streams` as one pcap to `out`; return how many."""
        spans: dict[FlowKey, list[tuple[float, float]]] = {}
        for ref in streams:
            spans.setdefault(key_of(ref), []).append(
                (ref.first_ts - self.margin, ref.last_ts + self.margin)
            )
        self.flush()
        per_segment = [self._matches(s, spans) for s in self._segments() if _wanted(s, spans)]
        writer: PcapWriter | None = None
        count = 0
        for ts, linktype, data, wirelen in heapq.merge(*per_segment, key=lambda f: f[0]):
            if writer is None:
                writer = PcapWriter(out, linktype)
            if linktype != writer.linktype:
                self._counters["export_skipped"] += 1
                continue
            writer.write(ts, data, wirelen)
            count += 1
        if writer is None:
            writer = PcapWriter(out, _LINKTYPE_ETHERNET)
        writer.close()
        self._counters["exported"] += count
        return count

    def _segments(self) -> list[_Segment]:
        if self.readonly:
            return self._listed()
        current = [] if self._current is None else [self._current]
        return [*self._closed, *current]

    def _listed(self) -> list[_Segment]:
        """Read-only mode: the segments on disk now (module docstring)."""
        found: list[_Segment] = []
        for number, path in _numbered(self.directory):
            index = self._cached.get(number)
            if index is None:
                try:
                    index = _INDEX_DECODER.decode(path.with_suffix(".idx").read_bytes())
                    self._cached[number] = index
                except FileNotFoundError:
                    index = _rebuild(path, self._limits)  # being written: not cached
                except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                    continue  # deleted or being replaced meanwhile
            found.append(_Segment(number, path, index, 0))
        live = {segment.number for segment in found}
        for number in [n for n in self._cached if n not in live]:
            del self._cached[number]
        return found

    def _matches(
        self, segment: _Segment, spans: dict[FlowKey, list[tuple[float, float]]]
    ) -> list[Frame]:
        decoder = Decoder(self._limits)
        out: list[Frame] = []
        for frame in _frames(segment.path):
            ts = frame[0]
            packet = decoder.decode(ts, frame[1], frame[2])
            if packet is None:
                continue
            ranges = spans.get(flow_key(packet[0], packet[1], packet[2], packet[3], packet[4]))
            if ranges is not None and any(lo <= ts <= hi for lo, hi in ranges):
                out.append(frame)
        out.sort(key=lambda f: f[0])
        return out

    # --- housekeeping -------------------------------------------------------------------

    def _recover(self) -> None:
        for _, path in _numbered(self.directory):
            idx = path.with_suffix(".idx")
            try:
                index = _INDEX_DECODER.decode(idx.read_bytes())
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                index = _rebuild(path, self._limits)
                idx.write_bytes(_INDEX_ENCODER.encode(index))
            size = _file_size(path) + _file_size(idx)
            self._closed.append(_Segment(int(path.stem), path, index, size))
        self._enforce_limit()

    def size_bytes(self) -> int:
        """Bytes of all segments and indexes (the current segment as written so far)."""
        if self.readonly:
            return sum(
                _file_size(path) + _file_size(path.with_suffix(".idx"))
                for _, path in _numbered(self.directory)
            )
        total = sum(s.size for s in self._closed)
        return total + (0 if self._current is None else self._current.size)

    def counters(self) -> dict[str, int]:
        """frames (written), rejected (timestamps a pcap cannot hold), dropped_segments,
        exported, export_skipped."""
        return dict(self._counters)

    def close(self) -> None:
        if not self.readonly:
            self._close_current()


def _numbered(directory: Path) -> list[tuple[int, Path]]:
    """The segment files of `directory` (NNNNNNNN.pcap), oldest first; none if it is absent."""
    try:
        paths = [p for p in directory.glob("*.pcap") if p.stem.isdigit()]
    except OSError:
        return []
    return sorted((int(p.stem), p) for p in paths)


def _wanted(segment: _Segment, spans: dict[FlowKey, list[tuple[float, float]]]) -> bool:
    index = segment.index
    for key in index.flows & spans.keys():
        if any(lo <= index.last_ts and index.first_ts <= hi for lo, hi in spans[key]):
            return True
    return False


def _frames(path: Path) -> list[Frame]:
    """Every complete frame of a segment (a torn last record is ignored)."""
    source = PcapFileSource(path)
    frames: list[Frame] = []
    try:
        for batch in source.batches():
            frames.extend(batch)
    except PcapFormatError:
        pass  # a segment cut short by a crash: keep the complete frames before the damage
    except OSError:
        pass  # deleted by the writer while a reader looked (read-only mode)
    finally:
        source.close()
    return frames


def _rebuild(path: Path, limits: DecodeLimits) -> SegmentIndex:
    decoder = Decoder(limits)
    frames = _frames(path)
    index = SegmentIndex(frames[0][1] if frames else _LINKTYPE_ETHERNET, flows=set())
    for ts, linktype, data, _ in frames:
        index.first_ts = ts if index.frames == 0 else min(index.first_ts, ts)
        index.last_ts = max(index.last_ts, ts)
        index.frames += 1
        packet = decoder.decode(ts, linktype, data)
        if packet is not None:
            index.flows.add(flow_key(packet[0], packet[1], packet[2], packet[3], packet[4]))
    return index


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
