"""Microbenchmark of `Decoder.decode`: synthetic frames through a tight loop, packets/s.

Run: `.venv/bin/python bench/bench_decode.py [seconds-per-case]`.  Each case decodes one
prebuilt frame over and over for a bounded time and prints the best rate of a few rounds.
No assertions: speed is reported here, never tested.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable

from pilotfish.config import DecodeLimits
from pilotfish.decode.decoder import Decoder

_SRC4, _DST4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
_SRC6, _DST6 = bytes(15) + b"\x01", bytes(15) + b"\x02"
_MACS = bytes.fromhex("020000000002020000000001")


def _tcp(payload: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", 40000, 80, 1, 2, 0x50, 0x18, 65535, 0, 0) + payload


def _ipv4(payload: bytes, proto: int = 6) -> bytes:
    size = 20 + len(payload)
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 1, 0x4000, 64, proto, 0, _SRC4, _DST4) + payload
    )


def _ipv6(payload: bytes, nxt: int = 6) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, _SRC6, _DST6) + payload


def _eth(payload: bytes, ethertype: int = 0x0800, vlan: bool = False) -> bytes:
    tag = struct.pack("!HH", 0x8100, 5) if vlan else b""
    return _MACS + tag + struct.pack("!H", ethertype) + payload


def _cases() -> list[tuple[str, int, bytes]]:
    udp = struct.pack("!HHHH", 40000, 53, 8 + 40, 0) + bytes(40)
    vxlan_inner = _eth(_ipv4(_tcp(b"x" * 100)))
    vxlan = (
        struct.pack("!HHHH", 1, 4789, 16 + len(vxlan_inner), 0) + b"\x08" + bytes(7) + vxlan_inner
    )
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8))
    return [
        ("eth/ipv4/tcp ack (0 B)", 1, _eth(_ipv4(_tcp(b""))) + bytes(6)),
        ("eth/ipv4/tcp 100 B", 1, _eth(_ipv4(_tcp(b"x" * 100)))),
        ("eth/ipv4/tcp 1448 B", 1, _eth(_ipv4(_tcp(b"x" * 1448)))),
        ("eth/vlan/ipv4/tcp 100 B", 1, _eth(_ipv4(_tcp(b"x" * 100)), vlan=True)),
        ("sll2/ipv4/tcp 100 B", 276, sll2 + _ipv4(_tcp(b"x" * 100))),
        ("eth/ipv6/tcp 100 B", 1, _eth(_ipv6(_tcp(b"x" * 100)), 0x86DD)),
        ("eth/ipv4/udp 40 B", 1, _eth(_ipv4(udp, 17))),
        ("eth/ipv4/udp/vxlan/tcp", 1, _eth(_ipv4(vxlan, 17))),
        ("eth/arp (skipped)", 1, _eth(bytes(28), 0x0806)),
    ]


def _rate(
    decode: Callable[[float, int, bytes], object], linktype: int, frame: bytes, seconds: float
) -> float:
    batch = 100_000
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(batch):
            decode(0.0, linktype, frame)
        best = max(best, batch / (time.perf_counter() - start))
    return best


def run(seconds: float = 1.0) -> str:
    """Every case's best packets/s, one line each."""
    decode = Decoder(DecodeLimits()).decode
    lines = [f"{'case':<28} {'packets/s':>12}"]
    for name, linktype, frame in _cases():
        lines.append(f"{name:<28} {_rate(decode, linktype, frame, seconds):>12,.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
