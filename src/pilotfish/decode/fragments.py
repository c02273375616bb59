"""IP fragment reassembly (IPv4 and IPv6 alike), sans-IO, bounded, on capture time.

`Reassembler.add` takes one fragment's payload (the bytes after the IP header or the IPv6
fragment header) with its byte offset and more-fragments flag, and returns the whole
datagram payload once every byte from 0 to the end is present.  Time only comes in with the
fragments (`ts`) and through `expire(now)`; nothing reads a clock.

Policy, as a Linux receiver does it:
- a fragment lying entirely inside one already held is a duplicate: ignored, counted;
- a fragment that partly overlaps another (or disagrees about the datagram's end) makes
  the whole datagram invalid: dropped, counted in `fragment_overlaps`.

Bounds, each crossing counted in `fragment_overflow`:
- at most `limits.max_fragment_sets` datagrams in progress; a new one evicts the oldest;
- a datagram may not grow beyond `limits.max_datagram` bytes;
- at most `MAX_PIECES` fragments per datagram (tiny-fragment floods).
Incomplete datagrams older than `limits.fragment_timeout` (capture seconds since their first
fragment) are dropped by `expire` or when their next fragment arrives, counted in
`fragment_timeouts`.  Memory is bounded by `limits.max_fragment_bytes` across all sets
(oldest sets are dropped first when a new fragment would cross it).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable

from pilotfish.config import DecodeLimits
from pilotfish.decode.stats import DecodeStats

MAX_PIECES = 2048
"""Fragments held per datagram; 64 KiB in 8-byte fragments would need 8192."""

# what _insert decided about one fragment
_STORED = object()
_DUPLICATE = object()
_DROP_OVERLAP = object()
_DROP_OVERFLOW = object()


class _Pending:
    """One datagram being reassembled: sorted, non-overlapping pieces."""

    __slots__ = ("ends", "first_ts", "pieces", "received", "starts", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.total = -1  # datagram length, known once the last fragment arrived
        self.received = 0
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.pieces: list[bytes] = []


class Reassembler:
    """Pending fragment sets keyed by whatever identifies a datagram (addresses, id, proto)."""

    def __init__(self, limits: DecodeLimits, stats: DecodeStats) -> None:
        self._limits = limits
        self._stats = stats
        self._sets: dict[Hashable, _Pending] = {}  # insertion order = age order
        self._bytes = 0  # fragment bytes held across all sets

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._sets.pop(key).received

    def __len__(self) -> int:
        return len(self._sets)

    def add(self, key: Hashable, ts: float, offset: int, more: bool, data: bytes) -> bytes | None:
        """Store one fragment; return the datagram's payload when it became complete."""
        stats = self._stats
        stats.fragments += 1
        sets = self._sets
        pending = sets.get(key)
        if pending is not None and ts - pending.first_ts > self._limits.fragment_timeout:
            self._drop(key)
            stats.fragment_timeouts += 1
            pending = None
        if pending is None:
            if len(sets) >= self._limits.max_fragment_sets:
                stats.fragment_overflow += 1
                if not sets:  # reassembly disabled (max_fragment_sets = 0)
                    return None
                self._drop(next(iter(sets)))
            pending = sets[key] = _Pending(ts)
        before = pending.received
        verdict = self._insert(pending, offset, more, data)
        self._bytes += pending.received - before
        if verdict is _DROP_OVERLAP:
            self._drop(key)
            stats.fragment_overlaps += 1
            return None
        if verdict is _DROP_OVERFLOW:
            self._drop(key)
            stats.fragment_overflow += 1
            return None
        if verdict is _DUPLICATE:
            stats.fragment_duplicates += 1
        if pending.received != pending.total:
            while self._bytes > self._limits.max_fragment_bytes:
                oldest = next(iter(sets))
                self._drop(oldest)
                stats.fragment_overflow += 1
                if oldest == key:
                    break
            return None
        self._drop(key)
        stats.reassembled += 1
        return b"".join(pending.pieces)

    def expire(self, now: float) -> int:
        """Drop datagrams whose first fragment is older than the timeout; return how many."""
        limit = now - self._limits.fragment_timeout
        stale = [key for key, pending in self._sets.items() if pending.first_ts < limit]
        for key in stale:
            self._drop(key)
        self._stats.fragment_timeouts += len(stale)
        return len(stale)

    def _insert(self, pending: _Pending, start: int, more: bool, data: bytes) -> object:
        end = start + len(data)
        if end > self._limits.max_datagram:
            return _DROP_OVERFLOW
        total = pending.total
        if not more:
            if total >= 0 and total != end:
                return _DROP_OVERLAP
            if pending.ends and pending.ends[-1] > end:
                return _DROP_OVERLAP
            pending.total = total = end
        elif total >= 0 and end > total:
            return _DROP_OVERLAP
        if start == end:
            return _STORED
        starts, ends = pending.starts, pending.ends
        at = bisect_right(starts, start)
        if at and ends[at - 1] > start:  # the piece before reaches into this one
            return _DUPLICATE if ends[at - 1] >= end else _DROP_OVERLAP
        if at < len(starts) and starts[at] < end:  # the piece after starts inside this one
            return _DROP_OVERLAP
        if len(starts) >= MAX_PIECES:
            return _DROP_OVERFLOW
        starts.insert(at, start)
        ends.insert(at, end)
        pending.pieces.insert(at, data)
        pending.received += end - start
        return _STORED
