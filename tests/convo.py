"""Synthetic but well-formed conversations written to pcap files, for pipeline-level tests.

A `TcpConversation` produces the frames of a real TCP exchange (handshake, data with correct
sequence and acknowledgement numbers, FIN), so flows, dissectors and the pipeline all see
what a capture would hold.
"""

from __future__ import annotations

from pathlib import Path

from pilotfish.capture.base import LINKTYPE_ETHERNET
from pilotfish.capture.pcapfile import PcapWriter
from pilotfish.model import Frame
from tests.decode.frames import ethernet, ipv4, tcp, udp

SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


class TcpConversation:
    """Frames of one connection; `send` appends a segment from the client or the server."""

    def __init__(
        self, client: bytes, cport: int, server: bytes, sport: int, ts: float = 1_700_000_000.0
    ) -> None:
        self.addr = {0: (client, cport), 1: (server, sport)}
        self.seq = {0: 1000, 1: 5000}
        self.ts = ts
        self.frames: list[Frame] = []

    def _segment(self, side: int, flags: int, payload: bytes = b"", dt: float = 0.001) -> None:
        self.ts += dt
        (src, sp), (dst, dp) = self.addr[side], self.addr[1 - side]
        seg = tcp(sp, dp, payload, seq=self.seq[side], ack=self.seq[1 - side], flags=flags)
        frame = ethernet(ipv4(seg, src=src, dst=dst))
        self.frames.append((self.ts, LINKTYPE_ETHERNET, frame, len(frame)))
        self.seq[side] = (self.seq[side] + len(payload) + (1 if flags & (SYN | FIN) else 0)) & (
            2**32 - 1
        )

    def handshake(self) -> TcpConversation:
        self._segment(0, SYN)
        self._segment(1, SYN | ACK)
        self._segment(0, ACK)
        return self

    def send(self, side: int, payload: bytes, dt: float = 0.001) -> TcpConversation:
        self._segment(side, PSH | ACK, payload, dt)
        return self

    def close(self) -> TcpConversation:
        self._segment(0, FIN | ACK)
        self._segment(1, FIN | ACK)
        self._segment(0, ACK)
        return self


def udp_frame(ts: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> Frame:
    frame = ethernet(ipv4(udp(sport, dport, payload), proto=17, src=src, dst=dst))
    return (ts, LINKTYPE_ETHERNET, frame, len(frame))


def write_pcap(path: Path, frames: list[Frame]) -> Path:
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        writer.write_frames(sorted(frames, key=lambda f: f[0]))
    return path
