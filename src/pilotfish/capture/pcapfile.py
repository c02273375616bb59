"""Capture files: a streaming pcap/pcapng reader (a `Source`) and a classic pcap writer.

Reading: `PcapFileSource(path)` reads classic pcap (microsecond and nanosecond magics, both
byte orders) and pcapng (blocks parsed by `capture/pcapng.py`), gzip-compressed or not, in
chunks of `chunk_size` bytes (1 MiB) and slices records out of each chunk with precompiled
structs, so memory is bounded by one chunk plus the largest record (256 KiB) or block
(16 MiB) whatever the file size.  Frames are `(timestamp, linktype, data, original_length)`
tuples in batches of `batch_size`; timestamps are float epoch seconds, so nanosecond files
keep about 0.2 us of precision at today's epoch.

Bounds and errors: a classic record longer than the file's snaplen or than `MAX_RECORD` is
damage; a missing file, a file that is neither format (the message shows the magic found), a
truncated header, damaged gzip data and a file ending inside a record/block raise
`PcapFormatError` (a `SourceError`) with one line naming the file, the problem and its byte
offset -- always after every complete frame before the damage was yielded.  An empty or
header-only file yields nothing and is not an error.  `stats().extra` reports `format`,
`compression`, `truncated_records` (0/1), `interfaces`, and for pcapng `sections`,
`skipped_blocks`, `bad_interface`, `bad_options`.

Writing: `PcapWriter` produces little-endian classic pcap (microsecond or nanosecond) that
tcpdump and tshark read back exactly; data longer than the snaplen is cut to it, the
original length is kept.  Output is buffered and flushed every 1 MiB and on close.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Literal, Protocol

from pilotfish.capture._pcaprecords import parse_records
from pilotfish.capture.base import CaptureStats, SourceError
from pilotfish.capture.pcapng import BT_SHB, CaptureDamage, PcapngParser
from pilotfish.model import Frame

MAX_RECORD: Final = 256 * 1024
DEFAULT_SNAPLEN: Final = 262144
CHUNK_SIZE: Final = 1 << 20
GZIP_MAGIC: Final = b"\x1f\x8b"

# classic pcap magic as read little-endian -> (byte order, fraction scale, nanosecond?)
_CLASSIC_MAGICS: Final = {
    0xA1B2C3D4: ("<", 1e-6),
    0xA1B23C4D: ("<", 1e-9),
    0xD4C3B2A1: (">", 1e-6),
    0x4D3CB2A1: (">", 1e-9),
}
_U32LE: Final = struct.Struct("<I")
_HEADER_LEN: Final = 24
_WRITE_HEADER: Final = struct.Struct("<IHHiIII")
_WRITE_RECORD: Final = struct.Struct("<IIII")
_BUFFER_SIZE: Final = 1 << 20
_MAX_TS: Final = float(1 << 32)  # pcap seconds are 32-bit unsigned
_LAST_SECOND: Final = _MAX_TS - 1.0

PcapFormat = Literal["pcap", "pcapng"]


class PcapFormatError(SourceError):
    """A capture file that cannot be read (further); the message names the file."""


class _Parser(Protocol):
    frames: int
    captured_bytes: int

    def parse(self, buf: bytes, off: int, out: list[Frame], room: int) -> int: ...

    def counters(self) -> dict[str, int]: ...


class ClassicParser:
    """Classic pcap records (after the 24-byte file header) in, frames out; sans-IO."""

    def __init__(self, header: bytes) -> None:
        """Parse the file header; raises `CaptureDamage` if it is not a pcap header."""
        if len(header) < _HEADER_LEN:
            raise CaptureDamage(f"truncated pcap header ({len(header)} of 24 bytes)", 0)
        magic = _U32LE.unpack_from(header, 0)[0]
        if magic not in _CLASSIC_MAGICS:
            raise CaptureDamage(f"not a pcap header (magic {magic:#010x})", 0)
        order, self._scale = _CLASSIC_MAGICS[magic]
        self.nanosecond = self._scale == 1e-9
        fields = struct.unpack_from(order + "HHiIII", header, 4)
        self.version = (fields[0], fields[1])
        self.snaplen = fields[4]
        self.linktype = fields[5] & 0xFFFF  # the upper bits carry FCS length information
        # Like libpcap, a record longer than the header's snaplen is tolerated (some writers
        # get the header wrong) and counted; only a length past MAX_RECORD is corruption.
        self._snaplen = self.snaplen if 0 < self.snaplen < MAX_RECORD else MAX_RECORD
        self.over_snaplen = 0
        self._record = struct.Struct(order + "IIII")
        self._little = order == "<"
        self.frames = 0
        self.captured_bytes = 0

    def counters(self) -> dict[str, int]:
        extra = {"interfaces": 1}
        if self.over_snaplen:
            extra["over_snaplen"] = self.over_snaplen
        return extra

    def parse(self, buf: bytes, off: int, out: list[Frame], room: int) -> int:
        """Consume complete records of `buf` from `off`; append at most `room` frames."""
        off, nframes, nbytes, over, bad = parse_records(
            buf, off, out, room, self._little, self._scale, self.linktype, self._snaplen, MAX_RECORD
        )
        self.frames += nframes
        self.captured_bytes += nbytes
        self.over_snaplen += over
        if bad >= 0:
            cap = self._record.unpack_from(buf, bad)[2]
            raise CaptureDamage(f"record length {cap} exceeds the limit {MAX_RECORD}", bad)
        return off


def _open_stream(path: Path) -> tuple[io.BufferedReader, io.BufferedIOBase, bool]:
    """Open `path` (raw file, readable stream, compressed?); gzip is undone transparently."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise PcapFormatError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        compressed = raw.peek(2)[:2] == GZIP_MAGIC
    except OSError as exc:
        raw.close()
        raise PcapFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if compressed:
        return raw, gzip.GzipFile(fileobj=raw, mode="rb"), True
    return raw, raw, False


def _read(stream: io.BufferedIOBase, size: int) -> bytes:
    """Read up to `size` bytes; raises `CaptureDamage` (pos -1) on I/O or gzip damage."""
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise CaptureDamage(f"read failed ({exc})", -1) from None


def _read_at_least(stream: io.BufferedIOBase, size: int, chunk: int) -> bytes:
    """Read until `size` bytes or end of file (short reads happen on pipes and gzip)."""
    data = _read(stream, max(size, chunk))
    while 0 < len(data) < size:
        more = _read(stream, max(size - len(data), chunk))
        if not more:
            break
        data += more
    return data


def _format_of(head: bytes) -> PcapFormat | None:
    if len(head) >= 4:
        if _U32LE.unpack_from(head, 0)[0] in _CLASSIC_MAGICS:
            return "pcap"
        if _U32LE.unpack_from(head, 0)[0] == BT_SHB:
            return "pcapng"
    return None


def detect_format(path: Path | str) -> PcapFormat:
    """Which capture format `path` holds (gzip undone); raises `PcapFormatError`."""
    path = Path(path)
    raw, stream, _compressed = _open_stream(path)
    try:
        head = _read_at_least(stream, 4, 4)
    except CaptureDamage as exc:
        raise PcapFormatError(f"{path}: {exc.what}") from None
    finally:
        stream.close()
        raw.close()
    found = _format_of(head)
    if found is None:
        raise PcapFormatError(f"{path}: {_not_a_capture(head)}")
    return found


def _not_a_capture(head: bytes) -> str:
    if not head:
        return "empty file, neither pcap nor pcapng"
    if len(head) < 4:
        return f"truncated header ({len(head)} bytes)"
    return f"neither pcap nor pcapng (magic {head[:4].hex()})"


class PcapFileSource:
    """A capture file as a `Source`: streams frames in batches, bounded memory."""

    name = "pcap"

    def __init__(
        self, path: Path | str, batch_size: int = 1024, *, chunk_size: int = CHUNK_SIZE
    ) -> None:
        if batch_size < 1 or chunk_size < 1:
            raise ValueError("batch_size and chunk_size must be positive")
        self.path = Path(path)
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.format: PcapFormat | None = None
        self.compressed = False
        self._raw: io.BufferedReader | None = None
        self._stream: io.BufferedIOBase | None = None
        self._parser: _Parser | None = None
        self._buf = b""
        self._off = 0
        self._base = 0  # file offset (uncompressed) of self._buf[0]
        self._truncated = 0

    def open(self) -> None:
        """Open the file and read its header; raises `PcapFormatError` on an unusable file."""
        if self._stream is not None:
            return
        self._raw, self._stream, self.compressed = _open_stream(self.path)
        try:
            head = _read_at_least(self._stream, _HEADER_LEN, self.chunk_size)
            if not head:
                return  # an empty file is an empty capture
            self.format = _format_of(head)
            if self.format is None:
                raise CaptureDamage(_not_a_capture(head), 0)
            if self.format == "pcap":
                self._parser = ClassicParser(head[:_HEADER_LEN])
                self._off = _HEADER_LEN
            else:
                self._parser = PcapngParser()
            self._buf = head
        except CaptureDamage as exc:
            self.close()
            raise self._error(exc) from None

    def batches(self) -> Iterator[list[Frame]]:
        """Yield lists of up to `batch_size` frames; damage raises after the good frames."""
        if self._stream is None:
            self.open()
        out: list[Frame] = []
        while self._parser is not None and self._stream is not None:
            try:
                self._off = self._parser.parse(
                    self._buf, self._off, out, self.batch_size - len(out)
                )
                if len(out) >= self.batch_size:
                    yield out
                    out = []
                    continue
                more = _read(self._stream, self.chunk_size)
            except CaptureDamage as exc:
                if out:
                    yield out
                raise self._error(exc) from None
            if not more:
                break
            self._base += self._off
            self._buf = self._buf[self._off :] + more
            self._off = 0
        if out:
            yield out
        left = len(self._buf) - self._off
        if left > 0 and self._parser is not None:
            self._truncated = 1
            unit = "record" if self.format == "pcap" else "block"
            raise self._error(
                CaptureDamage(f"file ends inside a {unit} ({left} trailing bytes)", self._off)
            )

    def stats(self) -> CaptureStats:
        parser = self._parser
        extra: dict[str, int | str] = {"format": self.format or "", "truncated_records": 0}
        if self.compressed:
            extra["compression"] = "gzip"
        if parser is not None:
            extra.update(parser.counters())
        extra["truncated_records"] = self._truncated
        return CaptureStats(
            backend=self.name,
            reason=f"reading {self.path}",
            received=parser.frames if parser is not None else 0,
            bytes=parser.captured_bytes if parser is not None else 0,
            extra=extra,
        )

    def close(self) -> None:
        stream, raw = self._stream, self._raw
        self._stream = self._raw = None
        self._buf = b""
        self._off = 0
        for handle in (stream, raw):
            if handle is not None:
                handle.close()

    def _error(self, damage: CaptureDamage) -> PcapFormatError:
        where = "" if damage.pos < 0 else f" at byte {self._base + damage.pos}"
        return PcapFormatError(f"{self.path}: {damage.what}{where}")


def record_time(ts: float, units: int) -> tuple[int, int]:
    """(seconds, fraction in `units` per second) of a pcap record, rounded to the nearest
    unit; ValueError when the seconds do not fit 32 bits."""
    sec = int(ts)
    frac = int((ts - sec) * units + 0.5)
    if frac >= units:
        sec += 1
        frac -= units
    if not 0 <= sec <= 0xFFFFFFFF:
        raise ValueError(f"timestamp {ts} does not fit a pcap record")
    return sec, frac


class PcapWriter:
    """Writes classic little-endian pcap to a path or a binary file object.

    `write` cuts data to the snaplen (the original length is kept).  A file object passed in
    is flushed but not closed by `close()`; a path is opened, truncated and closed here.
    Records are gathered in one buffer of `_BUFFER_SIZE` bytes, allocated once and reused
    (a fresh multi-megabyte buffer per batch costs a page fault per 4 KiB), and written out
    when it is full, by `flush()` and by `close()`; a record larger than the buffer goes to
    the file directly.
    """

    def __init__(
        self,
        target: Path | str | BinaryIO,
        linktype: int,
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = False,
    ) -> None:
        if not 0 <= linktype <= 0x0FFFFFFF:
            raise ValueError(f"link type {linktype} out of range")
        if not 0 < snaplen <= 0x7FFFFFFF:
            raise ValueError(f"snaplen {snaplen} out of range")
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self.frames = 0
        self._units = 1_000_000_000 if nanosecond else 1_000_000
        if isinstance(target, (str, Path)):
            self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._closed = False
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self._buf = bytearray(_BUFFER_SIZE)
        self._view = memoryview(self._buf)  # never resized, so the view stays valid
        _WRITE_HEADER.pack_into(self._buf, 0, magic, 2, 4, 0, 0, snaplen, linktype)
        self._fill = _WRITE_HEADER.size

    def write(self, ts: float, data: bytes, wirelen: int | None = None) -> None:
        """Append one frame captured at epoch `ts` seconds (`wirelen` defaults to len(data))."""
        self.write_frames([(ts, self.linktype, data, len(data) if wirelen is None else wirelen)])

    def write_frames(self, frames: Sequence[Frame]) -> None:
        """Append frames of this writer's link type, all or none: a frame of another link
        type, or a timestamp a pcap record cannot hold, is a ValueError and nothing of the
        call is written (every frame is checked before any is copied)."""
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        units, snaplen, linktype = self._units, self.snaplen, self.linktype
        for ts, frame_linktype, _data, _wirelen in frames:
            if frame_linktype != linktype:
                raise ValueError(f"frame link type {frame_linktype} != file link type {linktype}")
            if not 0 <= ts < _MAX_TS:
                raise ValueError(f"timestamp {ts} does not fit a pcap record")
            if ts >= _LAST_SECOND:
                record_time(ts, units)  # rounding may carry into a 33rd bit
        pack_into = _WRITE_RECORD.pack_into
        buf = self._buf
        fill = self._fill
        room = _BUFFER_SIZE - _WRITE_RECORD.size
        for ts, _linktype, data, wirelen in frames:
            sec, frac = record_time(ts, units)
            size = len(data)
            if size > snaplen:
                data = data[:snaplen]
                size = snaplen
            if not 0 <= wirelen <= 0xFFFFFFFF:
                wirelen = 0 if wirelen < 0 else 0xFFFFFFFF
            if fill + _WRITE_RECORD.size + size > _BUFFER_SIZE:
                self._write_out(fill)
                fill = 0
                if size > room:  # larger than the whole buffer: straight to the file
                    self._file.write(_WRITE_RECORD.pack(sec, frac, size, wirelen))
                    self._file.write(data)
                    continue
            pack_into(buf, fill, sec, frac, size, wirelen)
            fill += _WRITE_RECORD.size
            buf[fill : fill + size] = data
            fill += size
        self._fill = fill
        self.frames += len(frames)

    def write_records(self, records: bytes | bytearray | memoryview, frames: int) -> None:
        """Append ready classic records holding `frames` frames, already in this file's link
        type, snaplen and timestamp unit (as `AfPacketSource.pcap_batches` writes them)."""
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        size = len(records)
        fill = self._fill
        if fill + size > _BUFFER_SIZE:
            self._write_out(fill)
            fill = 0
            if size > _BUFFER_SIZE // 4:  # big enough to go out on its own
                self._file.write(records)
                self.frames += frames
                return
        self._buf[fill : fill + size] = records
        self._fill = fill + size
        self.frames += frames

    def _write_out(self, fill: int) -> None:
        if fill:
            self._file.write(self._view[:fill])
        self._fill = 0

    def flush(self) -> None:
        self._write_out(self._fill)
        self._file.flush()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self._owned:
                self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "MAX_RECORD",
    "ClassicParser",
    "PcapFileSource",
    "PcapFormatError",
    "PcapWriter",
    "detect_format",
    "record_time",
]
