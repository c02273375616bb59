"""The live feed: finished entries fanned out to WebSocket subscribers, never blocking capture.

`publish(entry)` may be called from any thread (the capture side); it appends to a bounded
hand-over deque and schedules one drain on the event loop.  Each subscriber has its own
bounded queue and filter; when a queue is full the entry is dropped for that subscriber and
counted (`Subscription.dropped`), so a slow or stuck client costs at most `max_queue` entries
of memory and never slows anyone else.  Entries that arrive faster than the loop drains the
hand-over deque are dropped too and counted in `LiveFeed.overflow`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from pilotfish.model import Entry

Match = Callable[[Entry], bool]


class Subscription:
    """One client's view of the feed: a bounded queue of the entries its filter accepts."""

    def __init__(self, match: Match | None, max_queue: int) -> None:
        self.match = match
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(max_queue)
        self.dropped = 0  # entries this client missed because its queue was full
        self.reported = 0  # how many of those it has been told about

    def offer(self, entry: Entry) -> None:
        if self.match is not None and not self.match(entry):
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1


class LiveFeed:
    """See the module docstring.  `bind(loop)` before publishing from other threads."""

    def __init__(self, max_queue: int = 1000, max_handover: int = 10_000) -> None:
        self.max_queue = max_queue
        self._subs: set[Subscription] = set()
        self._handover: deque[Entry] = deque()
        self._max_handover = max_handover
        self._lock = threading.Lock()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0
        self.overflow = 0
        self.dropped_total = 0  # by clients that have left, plus live ones on read

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def clients(self) -> int:
        return len(self._subs)

    def dropped(self) -> int:
        return self.dropped_total + sum(s.dropped for s in self._subs)

    def subscribe(self, match: Match | None) -> Subscription:
        sub = Subscription(match, self.max_queue)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            self.dropped_total += sub.dropped

    def publish(self, entry: Entry) -> None:
        """Hand an entry over (any thread, never blocks)."""
        loop = self._loop
        with self._lock:
            self.published += 1
            if len(self._handover) >= self._max_handover:
                self.overflow += 1
                return
            self._handover.append(entry)
            if self._scheduled or loop is None:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody listens any more
            with self._lock:
                self._handover.clear()
                self._scheduled = False

    def drain(self) -> None:
        """Deliver what was handed over (called on the loop; also usable directly)."""
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            entries = list(self._handover)
            self._handover.clear()
            self._scheduled = False
        subs = list(self._subs)
        for entry in entries:
            for sub in subs:
                sub.offer(entry)
