"""One direction of a TCP connection turned back into an ordered byte stream (sans-IO).

A `TcpStream` is fed the segments one side sent (`segment`) and the acknowledgements the other
side sent (`acked`); it pushes out, through two callables given at construction, the bytes in
stream order (`on_data(data, ts)`) and the holes it gave up on (`on_gap(size, ts)`).  It never
reads a clock or a socket: every timestamp comes in with a segment.

Rules, all in 32-bit modular sequence arithmetic (wrap-around at 2**32 is invisible):

* The stream starts at ISN+1 when a SYN is seen, otherwise at the first segment seen.
* In-order payload is delivered at once with the timestamp of its segment.  Payload at or
  behind the delivered point is trimmed and counted (`retransmitted_bytes`): nothing is ever
  delivered twice.
* Out-of-order payload is buffered (`out_of_order`).  Among buffered segments the first one
  received wins; later overlapping bytes are dropped and counted (`overlap_bytes`).  The buffer
  is released as soon as the hole before it fills.
* A hole is given up on (`on_gap`, then the buffered bytes after it) when the peer acknowledges
  bytes beyond it (the receiver has them, so the capture lost them: `ack_gaps`), when the
  buffer would exceed `max_pending_bytes` for this direction or `max_total_pending` for the
  whole table (`pending_overflows`; the buffer may exceed its bound by at most one segment
  while the hole is skipped), and when the flow ends (`finish`).
* Payload, FIN or ACK numbers more than `BOGUS_DISTANCE` (1 GiB) away from the delivered point
  are ignored and counted (`bogus_segments`, `bogus_acks`) instead of opening a huge gap.
* Byte cap: once `max_stream_bytes` have been delivered the direction is *cut*: the bytes up to
  the cap are delivered, everything after is dropped and counted (`cut_streams`, `cut_bytes`),
  the buffer is freed, and no further data or gap is reported.  Only a FIN is still tracked.

Delivered byte counts are kept in `counts[index]` (the flow's `bytes` list), so the owner sees
them without asking.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable

from pilotfish.config import FlowLimits
from pilotfish.flows.stats import FlowStats
from pilotfish.model import TCP_FIN, TCP_SYN

SEQ_MASK = 0xFFFFFFFF
_HALF = 1 << 31
BOGUS_DISTANCE = 1 << 30  # bytes; farther than any real window
_SYN_FIN = TCP_SYN | TCP_FIN

DataOut = Callable[[bytes, float], None]
GapOut = Callable[[int, float], None]


def seq_delta(a: int, b: int) -> int:
    """`a - b` for 32-bit sequence numbers, as a signed distance in [-2**31, 2**31)."""
    return ((a - b + _HALF) & SEQ_MASK) - _HALF


class TcpStream:
    """Reassembly of the bytes one side of a TCP connection sent.  See the module docstring.

    `offset` is the stream position of the next byte expected (bytes delivered plus bytes
    given up as gaps); `fin_offset` the position of the FIN once one is seen.
    """

    __slots__ = (
        "_base",
        "_counts",
        "_cut",
        "_index",
        "_limit",
        "_max_pending",
        "_max_total",
        "_on_data",
        "_on_gap",
        "_segs",
        "_starts",
        "_stats",
        "fin_offset",
        "offset",
        "pending_bytes",
        "started",
        "syn_isn",
    )

    def __init__(
        self,
        limits: FlowLimits,
        stats: FlowStats,
        on_data: DataOut,
        on_gap: GapOut,
        counts: list[int],
        index: int,
    ) -> None:
        self._limit = limits.max_stream_bytes
        self._max_pending = limits.max_pending_bytes
        self._max_total = limits.max_total_pending
        self._stats = stats
        self._on_data = on_data
        self._on_gap = on_gap
        self._counts = counts
        self._index = index
        self._base = 0  # sequence number of stream offset 0
        self._cut = False
        self._starts: list[int] = []  # offsets of buffered segments, sorted, non-overlapping
        self._segs: dict[int, bytes] = {}
        self.started = False
        self.syn_isn: int | None = None
        self.offset = 0
        self.fin_offset: int | None = None
        self.pending_bytes = 0

    # --- input -----------------------------------------------------------------------------

    def segment(self, seq: int, flags: int, payload: bytes, ts: float) -> None:
        """One segment this side sent: its sequence number, TCP flags and payload."""
        if not flags & _SYN_FIN and self.started:
            n = len(payload)
            if not n:
                return  # a pure ACK: nothing to deliver or to record on this side
            if (
                not self._starts
                and not self._cut
                and (seq - self._base - self.offset) & SEQ_MASK == 0
                and self._counts[self._index] + n <= self._limit
            ):
                # The common case: in order, nothing buffered, below the byte cap.
                self._counts[self._index] += n
                self.offset += n
                self._stats.delivered_bytes += n
                self._on_data(payload, ts)
                return
        self._segment(seq, flags, payload, ts)

    def _segment(self, seq: int, flags: int, payload: bytes, ts: float) -> None:
        if flags & TCP_SYN:
            if not self.started:
                self.syn_isn = seq
                self._base = (seq + 1) & SEQ_MASK
                self.started = True
            seq = (seq + 1) & SEQ_MASK
        elif not self.started:
            self._base = seq
            self.started = True
        rel = ((seq - self._base - self.offset + _HALF) & SEQ_MASK) - _HALF
        n = len(payload)
        if rel > BOGUS_DISTANCE or rel < -BOGUS_DISTANCE:
            if n or flags & TCP_FIN:
                self._stats.bogus_segments += 1
            return
        end = self.offset + rel + n
        if self._cut:
            self._stats.cut_bytes += n
        elif n:
            if rel == 0 and not self._starts:
                self._emit(payload, ts)
            elif rel + n <= 0:
                self._stats.retransmitted_bytes += n
            elif rel < 0 and not self._starts:
                self._stats.retransmitted_bytes -= rel
                self._emit(payload[-rel:], ts)
            else:
                self._insert(end - n, payload, ts)
        if flags & TCP_FIN and self.fin_offset is None:
            self.fin_offset = end

    def acked(self, ack: int, ts: float) -> None:
        """The other side acknowledged everything before sequence number `ack`.

        Bytes it acknowledges that were never seen were lost by the capture: each hole below
        `ack` is reported as a gap and the buffered data after it released.
        """
        if not self.started or self._cut:
            return
        rel = ((ack - self._base - self.offset + _HALF) & SEQ_MASK) - _HALF
        if rel <= 0:
            return
        if rel > BOGUS_DISTANCE:
            self._stats.bogus_acks += 1
            return
        target = self.offset + rel
        if self.fin_offset is not None and target > self.fin_offset:
            target = self.fin_offset  # the FIN takes a sequence number but carries no byte
        starts = self._starts
        while self.offset < target and not self._cut:
            self._stats.ack_gaps += 1
            if starts and starts[0] <= target:
                self._skip_hole(ts)
            else:
                self._gap(target - self.offset, ts)

    def finish(self, ts: float) -> None:
        """The flow ends: give up every hole, deliver what was buffered, report a missing tail
        before a FIN.  The stream is empty afterwards."""
        if self._cut:
            return
        while self._starts and not self._cut:
            self._skip_hole(ts)
        if not self._cut and self.fin_offset is not None and self.offset < self.fin_offset:
            self._gap(self.fin_offset - self.offset, ts)

    # --- state -----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """A FIN was seen and every byte before it was delivered (or the direction was cut)."""
        fin = self.fin_offset
        return fin is not None and (self._cut or self.offset >= fin)

    @property
    def cut(self) -> bool:
        """The direction reached `max_stream_bytes` and delivers nothing more."""
        return self._cut

    @property
    def next_seq(self) -> int:
        """The sequence number of the next byte expected."""
        return (self._base + self.offset) & SEQ_MASK

    # --- internals -------------------------------------------------------------------------

    def _emit(self, data: bytes, ts: float) -> None:
        counts = self._counts
        index = self._index
        room = self._limit - counts[index]
        n = len(data)
        if n > room:
            if room > 0:
                counts[index] += room
                self.offset += room
                self._stats.delivered_bytes += room
                self._on_data(data[:room], ts)
            self._cut_here(n - max(room, 0))
            return
        counts[index] += n
        self.offset += n
        self._stats.delivered_bytes += n
        self._on_data(data, ts)

    def _cut_here(self, dropped: int) -> None:
        stats = self._stats
        stats.cut_streams += 1
        stats.cut_bytes += dropped + self.pending_bytes
        stats.pending_bytes -= self.pending_bytes
        self.pending_bytes = 0
        self._starts.clear()
        self._segs.clear()
        self._cut = True

    def _insert(self, start: int, payload: bytes, ts: float) -> None:
        """Buffer the parts of `payload` (at stream offset `start`) nobody has covered yet."""
        stats = self._stats
        end = start + len(payload)
        pos = start
        if pos < self.offset:
            stats.retransmitted_bytes += self.offset - pos
            pos = self.offset
        elif pos > self.offset:
            stats.out_of_order += 1
        starts = self._starts
        segs = self._segs
        j = bisect_right(starts, pos)
        if j > 0:
            prev_end = starts[j - 1] + len(segs[starts[j - 1]])
            if prev_end > pos:
                pos = prev_end
        pieces: list[tuple[int, int]] = []
        while pos < end:
            if j < len(starts) and starts[j] < end:
                nxt = starts[j]
                if nxt > pos:
                    pieces.append((pos, nxt))
                pos = max(pos, nxt + len(segs[nxt]))
                j += 1
            else:
                pieces.append((pos, end))
                break
        kept = 0
        for lo, hi in pieces:
            insort(starts, lo)
            segs[lo] = payload[lo - start : hi - start]
            kept += hi - lo
        clipped = max(start, self.offset)
        stats.overlap_bytes += end - clipped - kept if end > clipped else 0
        self.pending_bytes += kept
        stats.pending_bytes += kept
        self._release(ts)
        while starts and (
            self.pending_bytes > self._max_pending or stats.pending_bytes > self._max_total
        ):
            stats.pending_overflows += 1
            self._skip_hole(ts)

    def _release(self, ts: float) -> None:
        starts = self._starts
        while starts and starts[0] == self.offset:
            data = self._segs.pop(starts.pop(0))
            self.pending_bytes -= len(data)
            self._stats.pending_bytes -= len(data)
            self._emit(data, ts)

    def _skip_hole(self, ts: float) -> None:
        hole = self._starts[0] - self.offset
        if hole > 0:
            self._gap(hole, ts)
        self._release(ts)

    def _gap(self, size: int, ts: float) -> None:
        self._stats.gaps += 1
        self._stats.gap_bytes += size
        self.offset += size
        self._on_gap(size, ts)
