"""Capture filters: tcpdump-syntax expressions compiled to classic BPF by libpcap.

`compile_filter(expr, linktype)` asks libpcap's own compiler (through ctypes, optimised, with
an unknown netmask) for the program of one link type, so `pilotfish` accepts exactly what
tcpdump accepts.  The resulting `BpfProgram` can:

* run in user space on one frame (`matches`, libpcap's interpreter: used by `read --bpf`,
  where each link type of a file gets its own program);
* be attached to a packet socket (`sock_fprog()` is what `SO_ATTACH_FILTER` takes);
* be rewritten for a Linux "cooked" socket (`for_cooked_socket()`), where the kernel runs
  the filter on the network-layer payload and the few link-header fields it knows are read
  through the kernel's ancillary offsets.

Limits: the program is copied out of libpcap at compile time and libpcap's handle and
program are freed at once, so nothing leaks and nothing needs a finaliser; an instruction
list longer than the kernel's 4096 is still returned (the kernel refuses it on attach, the
AF_PACKET source then filters in user space).  `matches` is one C call per frame and is not
thread-safe on one program (it reuses one packet header).  A bad expression raises
`BpfError` carrying libpcap's message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from functools import cache
from typing import Final

PCAP_NETMASK_UNKNOWN: Final = 0xFFFFFFFF
DEFAULT_SNAPLEN: Final = 262144
MAX_KERNEL_INSNS: Final = 4096  # BPF_MAXINSNS: the kernel refuses longer classic programs

# BPF opcode pieces needed to rewrite load offsets and to build tiny programs.
_BPF_CLASS_MASK: Final = 0x07
_BPF_LD: Final = 0x00
_BPF_LDX: Final = 0x01
_BPF_RET: Final = 0x06
_BPF_K: Final = 0x00
_BPF_MODE_MASK: Final = 0xE0
_BPF_ABS: Final = 0x20
_BPF_IND: Final = 0x40
_BPF_MSH: Final = 0xA0

# Linux ancillary data offsets (SKF_AD_OFF + field), as unsigned 32-bit values.
_SKF_AD_OFF: Final = (-0x1000) & 0xFFFFFFFF
_SKF_AD_PROTOCOL: Final = _SKF_AD_OFF + 0
_SKF_AD_PKTTYPE: Final = _SKF_AD_OFF + 4
_SKF_AD_IFINDEX: Final = _SKF_AD_OFF + 8

_SLL2_HDR_LEN: Final = 20
# SLL2 header offset -> the kernel's ancillary load for that field
_SLL2_ANCILLARY: Final = {0: _SKF_AD_PROTOCOL, 4: _SKF_AD_IFINDEX, 10: _SKF_AD_PKTTYPE}
_LINKTYPE_LINUX_SLL2: Final = 276

# pcap_open_dead() takes a DLT_ value; these LINKTYPE_ values (file headers) differ from it.
_LINKTYPE_TO_DLT: Final = {100: 11, 101: 12}

_SOCK_FPROG: Final = struct.Struct("=H6xQ")  # struct sock_fprog on 64-bit Linux

Instruction = tuple[int, int, int, int]


class BpfError(ValueError):
    """The expression does not compile (the message is libpcap's, e.g. "syntax error")."""


class _Insn(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _Program(ctypes.Structure):
    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn)))


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _PktHdr(ctypes.Structure):
    _fields_ = (("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32))


@cache
def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise BpfError(f"libpcap is not available: {exc}") from exc
    lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_compile.argtypes = (
        ctypes.c_void_p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    )
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_freecode.argtypes = (ctypes.POINTER(_Program),)
    lib.pcap_freecode.restype = None
    lib.pcap_close.argtypes = (ctypes.c_void_p,)
    lib.pcap_close.restype = None
    lib.pcap_offline_filter.argtypes = (
        ctypes.POINTER(_Program),
        ctypes.POINTER(_PktHdr),
        ctypes.c_char_p,
    )
    lib.pcap_offline_filter.restype = ctypes.c_int
    return lib


def compile_filter(expr: str, linktype: int, snaplen: int = DEFAULT_SNAPLEN) -> BpfProgram:
    """Compile a tcpdump-syntax `expr` for frames of `linktype` (optimised).

    Raises `BpfError` with libpcap's message when the expression is invalid or cannot apply
    to that link type (e.g. `ether host` on raw IP).
    """
    lib = _libpcap()
    handle = lib.pcap_open_dead(_LINKTYPE_TO_DLT.get(linktype, linktype), snaplen)
    if not handle:
        raise BpfError(f"libpcap cannot open a compiler for link type {linktype}")
    program = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expr.encode(), 1, PCAP_NETMASK_UNKNOWN):
            message = lib.pcap_geterr(handle) or b"cannot compile filter"
            raise BpfError(message.decode(errors="replace"))
        try:
            insns = [
                (i.code, i.jt, i.jf, i.k)
                for i in (program.bf_insns[n] for n in range(program.bf_len))
            ]
        finally:
            lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)
    return BpfProgram(insns, expression=expr, linktype=linktype)


class BpfProgram:
    """A classic BPF program owned by pilotfish (independent of libpcap's memory)."""

    def __init__(
        self, instructions: list[Instruction], expression: str = "", linktype: int = -1
    ) -> None:
        if not instructions:
            raise BpfError("empty BPF program")
        self.expression = expression
        self.linktype = linktype
        self._insns = list(instructions)
        self._array = (_Insn * len(self._insns))(*(_Insn(*i) for i in self._insns))
        self._program = _Program(len(self._insns), self._array)
        self._hdr = _PktHdr()
        self._fprog = _SOCK_FPROG.pack(len(self._insns), ctypes.addressof(self._array))

    @classmethod
    def accept_all(cls, snaplen: int = DEFAULT_SNAPLEN) -> BpfProgram:
        """Accept every frame, cut to `snaplen` bytes (the kernel's snap length trick)."""
        return cls([(_BPF_RET | _BPF_K, 0, 0, snaplen)], expression="", linktype=-1)

    @classmethod
    def reject_all(cls) -> BpfProgram:
        """Drop every frame (used to keep a socket quiet while it is being set up)."""
        return cls([(_BPF_RET | _BPF_K, 0, 0, 0)], expression="(reject all)", linktype=-1)

    @property
    def instructions(self) -> list[Instruction]:
        """(code, jt, jf, k) per instruction, as `tcpdump -dd` prints them."""
        return list(self._insns)

    def __len__(self) -> int:
        return len(self._insns)

    def tc_bytecode(self) -> str:
        """The program in tc's `bpf bytecode` notation: "N,code jt jf k,..."."""
        body = ",".join(f"{code} {jt} {jf} {k}" for code, jt, jf, k in self._insns)
        return f"{len(self._insns)},{body}"

    def sock_fprog(self) -> bytes:
        """The `struct sock_fprog` for `setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, ...)`.

        It points into this object's instruction array: keep the program alive while the
        kernel copies it (the kernel keeps its own copy once attached).
        """
        return self._fprog

    def matches(self, data: bytes, wirelen: int) -> bool:
        """Run the program on one frame (captured bytes `data`, original length `wirelen`)."""
        hdr = self._hdr
        hdr.caplen = len(data)
        hdr.len = wirelen
        return bool(
            _libpcap().pcap_offline_filter(ctypes.byref(self._program), ctypes.byref(hdr), data)
        )

    def for_cooked_socket(self) -> BpfProgram | None:
        """This LINUX_SLL2 program rewritten for a SOCK_DGRAM packet socket, or None.

        On a cooked socket the kernel runs the filter from the network header; loads inside
        the SLL2 header are mapped to the kernel's protocol / ifindex / packet-type fields.
        None means the filter reads other header bytes (e.g. the link address) and must run
        in user space on the synthesised SLL2 frame instead.
        """
        if self.linktype != _LINKTYPE_LINUX_SLL2:
            raise BpfError("only LINUX_SLL2 programs can be rewritten for a cooked socket")
        fixed: list[Instruction] = []
        for code, jt, jf, k in self._insns:
            cls = code & _BPF_CLASS_MASK
            mode = code & _BPF_MODE_MASK
            loads_packet = cls in (_BPF_LD, _BPF_LDX) and mode in (_BPF_ABS, _BPF_IND, _BPF_MSH)
            if loads_packet and k < _SKF_AD_OFF:
                if k >= _SLL2_HDR_LEN:
                    k -= _SLL2_HDR_LEN
                elif k in _SLL2_ANCILLARY and mode == _BPF_ABS:
                    k = _SLL2_ANCILLARY[k]
                else:
                    return None
            fixed.append((code, jt, jf, k))
        return BpfProgram(fixed, expression=self.expression, linktype=-1)

    def close(self) -> None:
        """Nothing native to free (libpcap's copy is freed at compile time); kept for symmetry."""

    def __repr__(self) -> str:
        return f"BpfProgram({self.expression!r}, linktype={self.linktype}, {len(self)} insns)"
