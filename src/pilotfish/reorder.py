"""Put entries back in request-timestamp order, within a memory bound.

Entries complete out of order: a slow response finishes after faster ones that started
later, and connection-level entries complete only when the connection closes.  The buffer
holds completed entries until the *watermark* passes them: no entry that could still
complete may start earlier than the watermark (the caller computes it from the oldest
pending message of every open flow and the current capture time).

Bound: at most `max_bytes` of estimated entry size are held.  Past it the oldest entries are
released early; an entry that later completes with an older timestamp is then emitted out of
order and counted in `late`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from pilotfish.model import Entry

_BASE_COST = 600  # bytes of an entry without bodies, roughly (Structs, strings, dicts)


def entry_cost(entry: Entry) -> int:
    """Rough memory estimate of an entry, used for the bound."""
    cost = _BASE_COST
    if entry.request is not None:
        cost += len(entry.request.body) + 64 * len(entry.request.headers)
    if entry.response is not None:
        cost += len(entry.response.body) + 64 * len(entry.response.headers)
    return cost


class Reorderer:
    """A min-heap of completed entries released in timestamp order."""

    def __init__(self, emit: Callable[[Entry], None], max_bytes: int = 64 * 1024 * 1024) -> None:
        self._emit = emit
        self._max_bytes = max_bytes
        self._heap: list[tuple[float, int, Entry, int]] = []
        self._seq = 0
        self._bytes = 0
        self._released_until = float("-inf")
        self.late = 0  # entries emitted after a newer one (the bound forced an early release)
        self.forced = 0  # entries released early because of the bound

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def add(self, entry: Entry) -> None:
        cost = entry_cost(entry)
        self._seq += 1
        heapq.heappush(self._heap, (entry.timestamp, self._seq, entry, cost))
        self._bytes += cost
        while self._bytes > self._max_bytes and self._heap:
            self.forced += 1
            self._pop()

    def release(self, watermark: float) -> None:
        """Emit every held entry that started before `watermark`."""
        heap = self._heap
        while heap and heap[0][0] < watermark:
            self._pop()

    def flush(self) -> None:
        """Emit everything (end of input)."""
        while self._heap:
            self._pop()

    def _pop(self) -> None:
        ts, _, entry, cost = heapq.heappop(self._heap)
        self._bytes -= cost
        if ts < self._released_until:
            self.late += 1
        else:
            self._released_until = ts
        self._emit(entry)
