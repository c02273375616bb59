"""The live feed: finished entries fanned out to WebSocket subscribers, never blocking capture.

`LiveFeed.publish(entry)` may be called from any thread (the capture side, or the
`FeedReceiver` of `api.feedpipe` when capture runs in another process).  It appends to a
bounded hand-over deque and schedules one drain on the event loop; entries arriving while
the deque is full are dropped and counted in `LiveFeed.overflow`.  With no subscriber an
entry costs one counter increment.  Entries lost before any filter could look at them (the
hand-over overflow, and losses upstream that the feed is told of with `note_lost`) are
passed on to every subscription at the next drain as `unfiltered` losses: the client
learns it may have missed that many, without knowing whether they would have matched.

Each `Subscription` has its own filter and a bounded queue (`max_queue` entries).  When the
queue is full the entry is dropped for that subscriber only and counted in
`Subscription.dropped`, so a client that reads slowly, never reads or vanishes costs at most
`max_queue` entries of memory and never slows the publisher or other clients; at most
`max_clients` subscriptions exist at once (more are refused with `TooManyClients`).  A subscription
is an async iterator of entries; `close()` (or `LiveFeed.unsubscribe`) ends it.  A feeder other
than `LiveFeed` (a hub merging workers' streams) may `offer` entries itself, count drops that
happened upstream (`note_dropped`), queue notices for the client (`notify`, bounded) and hook
`on_close`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from pilotfish.model import Entry

Match = Callable[[Entry], bool]

DEFAULT_MAX_QUEUE = 1000
DEFAULT_MAX_HANDOVER = 10_000
DEFAULT_MAX_CLIENTS = 256
MAX_NOTICES = 16


class TooManyClients(RuntimeError):
    """The feed already serves `max_clients` subscriptions."""


class Subscription:
    """One client's view of the feed: a bounded queue of the entries its filter accepts.

    Counters: `dropped` (entries missed because the queue was full), `delivered` (entries
    taken out by the reader), `reported` (drops the client has been told about; the app
    advances it).  `dropped + delivered + pending == offered` always holds.  `unfiltered`
    counts entries lost before the filter ran (`note_unfiltered`), `reported_unfiltered`
    what of those the client has been told.
    """

    def __init__(self, match: Match | None, max_queue: int, query: str = "") -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.match = match
        self.query = query
        self.max_queue = max_queue
        self._queue: deque[Entry] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self.offered = 0
        self.dropped = 0
        self.delivered = 0
        self.reported = 0
        self.unfiltered = 0
        self.reported_unfiltered = 0
        self.notices: deque[dict[str, object]] = deque(maxlen=MAX_NOTICES)
        self._unsubscribe: Callable[[Subscription], None] | None = None
        self._on_close: list[Callable[[], None]] = []

    @property
    def pending(self) -> int:
        """Entries queued for this client now (never more than `max_queue`)."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, entry: Entry) -> None:
        """Queue `entry` if the filter accepts it; drop and count it when the queue is full.

        Call on the event loop's thread (`LiveFeed` does).
        """
        if self._closed or (self.match is not None and not self.match(entry)):
            return
        self.offered += 1
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(entry)
        self._wakeup.set()

    def note_dropped(self, count: int) -> None:
        """Count entries lost before they reached this queue (e.g. upstream of a hub)."""
        if count > 0:
            self.offered += count
            self.dropped += count

    def note_unfiltered(self, count: int) -> None:
        """Count entries lost before any filter ran (they may or may not have matched)."""
        if count > 0 and not self._closed:
            self.unfiltered += count
            self._wakeup.set()

    @property
    def unreported(self) -> bool:
        """Losses the client has not been told about yet."""
        return self.dropped > self.reported or self.unfiltered > self.reported_unfiltered

    def notify(self, notice: dict[str, object]) -> None:
        """Queue a notice for the client (the last `MAX_NOTICES` are kept) and wake it."""
        if not self._closed:
            self.notices.append(notice)
            self._wakeup.set()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the subscription closes."""
        self._on_close.append(callback)

    def take_dropped(self) -> tuple[int, int]:
        """(dropped, unfiltered) losses not reported yet; marks them reported."""
        n, m = self.dropped - self.reported, self.unfiltered - self.reported_unfiltered
        self.reported, self.reported_unfiltered = self.dropped, self.unfiltered
        return n, m

    def poll(self) -> Entry | None:
        """The next queued entry without waiting, or None."""
        if not self._queue:
            return None
        self.delivered += 1
        return self._queue.popleft()

    async def get(self, timeout: float | None = None, notices: bool = False) -> Entry | None:
        """The next entry; None after `timeout` seconds without one or once closed (and,
        with `notices`, as soon as a notice waits)."""
        while not self._queue:
            if self._closed or (notices and self.notices):
                return None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        self.delivered += 1
        return self._queue.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Entry:
        entry = await self.get()
        if entry is None:
            raise StopAsyncIteration
        return entry

    def close(self) -> None:
        """Stop receiving; queued entries are discarded, waiting readers wake up."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._wakeup.set()
        if self._unsubscribe is not None:
            self._unsubscribe(self)
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()


class LiveFeed:
    """See the module docstring.  Publishing before `bind(loop)` keeps entries in the
    bounded hand-over deque until `drain()` (tests) or the loop is bound."""

    def __init__(
        self,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_handover: int = DEFAULT_MAX_HANDOVER,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        self.max_queue = max_queue
        self.max_clients = max_clients
        self.refused = 0  # subscriptions refused because max_clients were connected
        self._max_handover = max_handover
        self._subs: set[Subscription] = set()
        self._handover: deque[Entry] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0
        self.overflow = 0  # hand-over deque full: dropped before reaching any client
        self.lost_upstream = 0  # lost before reaching this feed (told by `note_lost`)
        self._unfiltered = 0  # overflow and upstream losses not yet passed to subscriptions
        self._dropped_gone = 0  # drops of clients that have left

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on `loop` from now on (the app binds its loop at startup)."""
        self._loop = loop
        if self._handover:
            self._schedule()

    @property
    def clients(self) -> int:
        return len(self._subs)

    def dropped(self) -> int:
        """Entries not delivered to slow clients, over the feed's lifetime."""
        return self._dropped_gone + sum(s.dropped for s in list(self._subs))

    def subscriptions(self) -> list[Subscription]:
        """The open subscriptions (for counters and tests)."""
        return list(self._subs)

    def pending(self) -> int:
        """Entries handed over and not yet fanned out."""
        return len(self._handover)

    def subscribe(self, match: Match | None, query: str = "") -> Subscription:
        """A new subscription (call on the loop's thread); raises TooManyClients."""
        if len(self._subs) >= self.max_clients:
            self.refused += 1
            raise TooManyClients(f"the live feed already serves {self.max_clients} clients")
        sub = Subscription(match, self.max_queue, query)
        sub._unsubscribe = self.unsubscribe
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            self._dropped_gone += sub.dropped
        sub.close()

    def publish(self, entry: Entry) -> None:
        """Hand an entry over (any thread, never blocks)."""
        with self._lock:
            self.published += 1
            if not self._subs:
                return
            if len(self._handover) >= self._max_handover:
                self.overflow += 1
                self._unfiltered += 1
                return  # a drain is scheduled already: the deque is not empty
            self._handover.append(entry)
            if self._scheduled or self._loop is None:
                return
            self._scheduled = True
        self._schedule()

    def note_lost(self, count: int) -> None:
        """Entries lost upstream (any thread): every subscription hears of them."""
        if count <= 0:
            return
        with self._lock:
            self.lost_upstream += count
            if not self._subs:
                return
            self._unfiltered += count
            if self._scheduled or self._loop is None:
                return
            self._scheduled = True
        self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # the loop is closed: nobody listens any more
            with self._lock:
                self._handover.clear()
                self._unfiltered = 0
                self._scheduled = False

    def drain(self) -> None:
        """Fan out what was handed over (runs on the loop; tests may call it directly)."""
        with self._lock:
            entries = list(self._handover)
            self._handover.clear()
            unfiltered, self._unfiltered = self._unfiltered, 0
            self._scheduled = False
        subs = list(self._subs)
        if unfiltered:
            for sub in subs:
                sub.note_unfiltered(unfiltered)
        for entry in entries:
            for sub in subs:
                sub.offer(entry)
