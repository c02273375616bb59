"""pcapng block parser: bytes of a pcapng stream in, frames out (sans-IO).

`PcapngParser.parse(buf, off, out, room)` walks the complete blocks found in `buf` from `off`,
appends up to `room` frames to `out` and returns the offset of the first block it did not
consume (an incomplete block at the end of `buf` waits for more bytes).  It never reads
files; `pcapfile.PcapFileSource` feeds it large chunks.

Understood: Section Header (each section has its own byte order and its own interfaces),
Interface Description (link type, snaplen, `if_tsresol` in both the power-of-10 and
power-of-2 forms, `if_tsoffset`), Enhanced Packet, Simple Packet (first interface of the
section, captured length = min(snaplen, original length, block room), timestamp carried
over from the previous packet because the block has none, 0.0 before any) and the obsolete
Packet block.  Well-formed Enhanced Packet Blocks take a fast path (one struct unpack each);
every other block goes through the general per-block handler.

Bounds and what is counted rather than trusted:
- a block longer than `MAX_BLOCK` (16 MiB), shorter than its fixed fields, not a multiple of
  4, or whose trailing length differs from its leading one is damage: `CaptureDamage`;
- packet data that overruns its block is damage;
- other block types (name resolution, statistics, secrets, custom, ...) are skipped and
  counted in `skipped_blocks`;
- packets naming an interface that was never described are dropped and counted in
  `bad_interface`; malformed or out-of-range IDB options are ignored and counted in
  `bad_options`.
"""

from __future__ import annotations

import struct
from typing import Final

from pilotfish.model import Frame

BT_SHB: Final = 0x0A0D0D0A
BT_IDB: Final = 0x00000001
BT_OPB: Final = 0x00000002
BT_SPB: Final = 0x00000003
BT_EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
MAX_BLOCK: Final = 16 * 1024 * 1024

OPT_END: Final = 0
OPT_IF_TSRESOL: Final = 9
OPT_IF_TSOFFSET: Final = 14

_MAGIC_LE: Final = struct.Struct("<I")
_DEFAULT_UNITS: Final = 1_000_000  # microseconds when if_tsresol is absent
_POW10: Final[tuple[int, ...]] = tuple(int(10**e) for e in range(19))


class CaptureDamage(ValueError):
    """The bytes are not a valid capture at buffer offset `pos`; the message says why."""

    def __init__(self, what: str, pos: int) -> None:
        super().__init__(what)
        self.what = what
        self.pos = pos


class _Layout:
    """Precompiled structs for one byte order (a section picks one)."""

    def __init__(self, order: str) -> None:
        self.head = struct.Struct(order + "II")  # block type, total length
        self.epb_head = struct.Struct(order + "IIIIIII")  # head + the EPB fields below
        self.u32 = struct.Struct(order + "I")
        self.version = struct.Struct(order + "HH")
        # EPB after type/len: interface, ts high, ts low, captured len, original len
        self.epb = struct.Struct(order + "IIIII")
        # OPB after type/len: interface, drops, ts high, ts low, captured len, original len
        self.opb = struct.Struct(order + "HHIIII")
        self.idb = struct.Struct(order + "HHI")  # link type, reserved, snaplen
        self.option = struct.Struct(order + "HH")
        self.i64 = struct.Struct(order + "q")


_LITTLE: Final = _Layout("<")
_BIG: Final = _Layout(">")

# (link type, snaplen, timestamp units per second, timestamp offset in seconds)
_Interface = tuple[int, int, int, int]


class PcapngParser:
    """Incremental pcapng parser; one instance per stream (state: section, interfaces)."""

    def __init__(self) -> None:
        self._layout: _Layout | None = None
        self._interfaces: list[_Interface] = []
        self._last_ts = 0.0
        self.frames = 0
        self.captured_bytes = 0
        self.sections = 0
        self.interfaces = 0
        self.skipped_blocks = 0
        self.bad_interface = 0
        self.bad_options = 0

    def counters(self) -> dict[str, int]:
        """What was seen besides packets, for `CaptureStats.extra`."""
        return {
            "sections": self.sections,
            "interfaces": self.interfaces,
            "skipped_blocks": self.skipped_blocks,
            "bad_interface": self.bad_interface,
            "bad_options": self.bad_options,
        }

    def parse(self, buf: bytes, off: int, out: list[Frame], room: int) -> int:
        """Consume complete blocks of `buf` from `off`; append at most `room` frames to `out`.

        Returns the offset of the first unconsumed byte.  Raises `CaptureDamage` on a block
        that cannot be valid (frames before it are already in `out`).
        """
        n = len(buf)
        append = out.append
        target = len(out) + room
        nbytes = 0
        nframes = 0
        lay = self._layout
        while off + 12 <= n and len(out) < target:
            # fast path: a well-formed Enhanced Packet Block of a known interface
            if lay is not None and off + 28 <= n:
                btype, blen, iface, hi, lo, cap, orig = lay.epb_head.unpack_from(buf, off)
                end = off + blen
                if (
                    btype == BT_EPB
                    and 32 <= blen <= MAX_BLOCK
                    and not blen & 3
                    and end <= n
                    and cap <= blen - 32
                    and iface < len(self._interfaces)
                    and lay.u32.unpack_from(buf, end - 4)[0] == blen
                ):
                    linktype, _snap, units, tsoff = self._interfaces[iface]
                    ts = ((hi << 32) | lo) / units + tsoff
                    append((ts, linktype, buf[off + 28 : off + 28 + cap], orig))
                    nbytes += cap
                    nframes += 1
                    self._last_ts = ts
                    off = end
                    continue
            end = self._block(buf, off, n, out)
            if end < 0:
                break
            off = end
            lay = self._layout
        self.frames += nframes
        self.captured_bytes += nbytes
        return off

    def _block(self, buf: bytes, off: int, n: int, out: list[Frame]) -> int:
        """Handle any one block at `off`; returns its end, or -1 when it is incomplete."""
        lay = self._layout if self._layout is not None else _LITTLE
        btype, blen = lay.head.unpack_from(buf, off)
        if btype == BT_SHB:
            lay = self._section_layout(buf, off)
            blen = lay.u32.unpack_from(buf, off + 4)[0]
        elif self._layout is None:
            raise CaptureDamage(f"block type {btype:#x} before any section header", off)
        if blen < 12 or blen & 3 or blen > MAX_BLOCK:
            raise CaptureDamage(f"bad block length {blen} (block type {btype:#x})", off)
        end: int = off + blen
        if end > n:
            return -1
        if lay.u32.unpack_from(buf, end - 4)[0] != blen:
            raise CaptureDamage(f"block type {btype:#x}: trailing length mismatch", off)
        ifaces = self._interfaces
        if btype in (BT_EPB, BT_OPB):
            if blen < 32:
                raise CaptureDamage(f"packet block too short ({blen} bytes)", off)
            if btype == BT_EPB:
                iface, hi, lo, cap, orig = lay.epb.unpack_from(buf, off + 8)
            else:
                iface, _drops, hi, lo, cap, orig = lay.opb.unpack_from(buf, off + 8)
            if cap > blen - 32:
                raise CaptureDamage(f"packet data ({cap} bytes) overruns its block", off)
            if iface < len(ifaces):
                linktype, _snap, units, tsoff = ifaces[iface]
                self._last_ts = ((hi << 32) | lo) / units + tsoff
                self._emit(out, linktype, buf[off + 28 : off + 28 + cap], orig)
            else:
                self.bad_interface += 1
        elif btype == BT_SPB:
            if blen < 16:
                raise CaptureDamage(f"simple packet block too short ({blen} bytes)", off)
            if ifaces:
                orig = lay.u32.unpack_from(buf, off + 8)[0]
                linktype, snap, _units, _tsoff = ifaces[0]
                cap = min(orig, blen - 16, snap or orig)
                self._emit(out, linktype, buf[off + 12 : off + 12 + cap], orig)
            else:
                self.bad_interface += 1
        elif btype == BT_IDB:
            if blen < 20:
                raise CaptureDamage(f"interface block too short ({blen} bytes)", off)
            ifaces.append(self._interface(lay, buf, off, end))
            self.interfaces += 1
        elif btype == BT_SHB:
            self._start_section(lay, buf, off, blen)
        else:
            self.skipped_blocks += 1
        return end

    def _emit(self, out: list[Frame], linktype: int, data: bytes, orig: int) -> None:
        out.append((self._last_ts, linktype, data, orig))
        self.frames += 1
        self.captured_bytes += len(data)

    # --- block helpers (once per section / interface, not per packet) ----------------------

    @staticmethod
    def _section_layout(buf: bytes, off: int) -> _Layout:
        magic = _MAGIC_LE.unpack_from(buf, off + 8)[0]
        if magic == BYTE_ORDER_MAGIC:
            return _LITTLE
        if magic == 0x4D3C2B1A:
            return _BIG
        raise CaptureDamage(f"section header with bad byte-order magic {magic:#010x}", off)

    def _start_section(self, lay: _Layout, buf: bytes, off: int, blen: int) -> None:
        if blen < 28:
            raise CaptureDamage(f"section header too short ({blen} bytes)", off)
        major, minor = lay.version.unpack_from(buf, off + 12)
        if major != 1:
            raise CaptureDamage(f"unsupported pcapng version {major}.{minor}", off)
        self._layout = lay
        self._interfaces = []
        self.sections += 1

    def _interface(self, lay: _Layout, buf: bytes, off: int, end: int) -> _Interface:
        linktype, _reserved, snaplen = lay.idb.unpack_from(buf, off + 8)
        units = _DEFAULT_UNITS
        tsoffset = 0
        pos = off + 16
        stop = end - 4
        while pos + 4 <= stop:
            code, length = lay.option.unpack_from(buf, pos)
            if code == OPT_END:
                break
            if pos + 4 + length > stop:
                self.bad_options += 1
                break
            if code == OPT_IF_TSRESOL:
                units = self._units(buf[pos + 4] if length >= 1 else 0xFF, units)
            elif code == OPT_IF_TSOFFSET:
                if length == 8:
                    tsoffset = lay.i64.unpack_from(buf, pos + 4)[0]
                else:
                    self.bad_options += 1
            pos += 4 + ((length + 3) & ~3)
        return (linktype, snaplen, units, tsoffset)

    def _units(self, value: int, default: int) -> int:
        """Units per second from an if_tsresol byte (MSB set: power of 2, else power of 10)."""
        exponent = value & 0x7F
        if value & 0x80:
            if exponent <= 63:
                return 1 << exponent
        elif exponent <= 18:
            return _POW10[exponent]
        self.bad_options += 1
        return default
