"""Microbenchmark of the TPACKET_V3 ring walk: frames/s through `RingWalker.next_block`.

Run: `.venv/bin/python bench/bench_afpacket.py [seconds-per-case]`.  A synthetic ring of
full blocks (laid out as the kernel writes them, on an anonymous mmap) is walked and marked
user-owned again, over and over, for a bounded time; the best rate of a few rounds is printed
for small and full-size frames, raw and cooked (SLL2 synthesis).  No assertions.
"""

from __future__ import annotations

import mmap
import struct
import sys
import time

from pilotfish.capture.base import LINKTYPE_ETHERNET
from pilotfish.capture.tpacket import SOCKADDR_LL, TP_STATUS_USER, RingWalker, build_block

BLOCK = 1 << 20
BLOCKS = 8
_SOCKADDR = SOCKADDR_LL.pack(17, b"\x08\x00", 2, 1, 0, 6, b"\x02" * 8)


def _ring(frame_len: int) -> tuple[mmap.mmap, int]:
    per_block = (BLOCK - 48) // ((80 + frame_len + 15) & ~15)
    frames = [(1, n, b"\xab" * frame_len, frame_len) for n in range(per_block)]
    block = build_block(frames, BLOCK, sockaddr=_SOCKADDR)
    ring = mmap.mmap(-1, BLOCK * BLOCKS)
    for index in range(BLOCKS):
        ring[index * BLOCK : (index + 1) * BLOCK] = bytes(block)
    return ring, per_block


def _rate(frame_len: int, cooked: bool, seconds: float) -> float:
    ring, _ = _ring(frame_len)
    walker = RingWalker(ring, BLOCK, BLOCKS, LINKTYPE_ETHERNET, cooked=cooked)
    best = 0.0
    for _ in range(3):
        frames = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            for index in range(BLOCKS):
                struct.pack_into("=I", ring, index * BLOCK + 8, TP_STATUS_USER)
            while (batch := walker.next_block()) is not None:
                frames += len(batch)
        best = max(best, frames / (time.perf_counter() - start))
    ring.close()
    return best


def run(seconds: float = 1.0) -> str:
    lines = ["ring walk (frames/s)"]
    for frame_len in (64, 1514):
        for cooked in (False, True):
            rate = _rate(frame_len, cooked, seconds)
            kind = "cooked/SLL2" if cooked else "raw"
            lines.append(f"  {frame_len:5d} B {kind:12s} {rate / 1e6:6.2f} Mpps")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
