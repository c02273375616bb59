"""Put entries back in request-timestamp order, within a memory bound.

Entries complete out of order: a slow response finishes after faster ones that started
later, and connection-level entries complete only when the connection closes.  The buffer
holds completed entries until the *watermark* passes them: no entry that could still
complete may start earlier than the watermark (the caller computes it from the oldest
pending message of every open flow and the current capture time).

Bound: at most `max_bytes` of estimated entry size are held.  Past it the oldest entries are
released early; an entry that later completes with an older timestamp is then emitted out of
order and counted in `late`.

Cost: new entries are appended unsorted and sorted once per release.  They arrive nearly in
order (each flow completes its messages in order), which is the case the sort of the
standard library does in linear time; a heap would pay a logarithmic number of comparisons
on every entry, twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from pilotfish.model import Entry

_BASE_COST = 600  # bytes of an entry without bodies, roughly (Structs, strings, dicts)
_INSERT_BELOW = 8  # fewer new entries than this are inserted one by one, not sorted in

# (timestamp, arrival number, entry, cost): sorts by time, then arrival
_Held = tuple[float, int, Entry, int]


def entry_cost(entry: Entry) -> int:
    """Rough memory estimate of an entry, used for the bound."""
    cost = _BASE_COST
    if entry.request is not None:
        cost += len(entry.request.body) + 64 * len(entry.request.headers)
    if entry.response is not None:
        cost += len(entry.response.body) + 64 * len(entry.response.headers)
    return cost


class Reorderer:
    """Completed entries, released in timestamp order (see the module docstring)."""

    def __init__(self, emit: Callable[[Entry], None], max_bytes: int = 64 * 1024 * 1024) -> None:
        self._emit = emit
        self._max_bytes = max_bytes
        self._sorted: list[_Held] = []  # in order from index _head on
        self._head = 0
        self._new: list[_Held] = []  # arrived since the last sort, any order
        self._seq = 0
        self._bytes = 0
        self._released_until = float("-inf")
        self.late = 0  # entries emitted after a newer one (the bound forced an early release)
        self.forced = 0  # entries released early because of the bound

    def __len__(self) -> int:
        return len(self._sorted) - self._head + len(self._new)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def add(self, entry: Entry) -> None:
        cost = entry_cost(entry)
        self._seq += 1
        self._new.append((entry.timestamp, self._seq, entry, cost))
        self._bytes += cost
        if self._bytes > self._max_bytes:
            self._order()
            while self._bytes > self._max_bytes and self._head < len(self._sorted):
                self.forced += 1
                self._pop()
            self._compact()

    def release(self, watermark: float) -> None:
        """Emit every held entry that started before `watermark`."""
        self._order()
        held = self._sorted
        end = len(held)
        while self._head < end and held[self._head][0] < watermark:
            self._pop()
        self._compact()

    def flush(self) -> None:
        """Emit everything (end of input)."""
        self._order()
        while self._head < len(self._sorted):
            self._pop()
        self._compact()

    def _order(self) -> None:
        """Bring the new entries into the sorted list."""
        new = self._new
        if not new:
            return
        held = self._sorted
        if len(new) < _INSERT_BELOW:
            for item in new:
                bisect.insort(held, item)
        else:
            held += new
            held.sort()
        self._new = []

    def _compact(self) -> None:
        """Let go of the emitted entries."""
        if self._head:
            del self._sorted[: self._head]
            self._head = 0

    def _pop(self) -> None:
        ts, _, entry, cost = self._sorted[self._head]
        self._head += 1
        self._bytes -= cost
        if ts < self._released_until:
            self.late += 1
        else:
            self._released_until = ts
        self._emit(entry)
