"""Live streams of several workers merged into the hub's subscriptions.

`FanIn(workers, query)` runs one task per worker that reads the worker's `/api/stream?q=`
(the filter is evaluated on the worker) and offers every entry to each hub subscription it
serves (`add`), batch by batch as the worker sends them; each subscription's bounded
queue drops and counts when its client is slow (`api.live`).  Hub clients with the same
query share one `FanIn`, so a worker serves one stream per distinct query whatever the
number of dashboards.  Drops a worker reports (`{"type": "dropped"}`: matching and
unfiltered) are added to every served subscription's counts, so each client hears of every
entry it missed.  Entries are delivered in arrival order (each worker's own order is kept;
there is no cross-worker reordering delay).

A worker that cannot be reached or closes the stream is retried with exponential backoff
(`backoff_base` .. `backoff_max` seconds) while any subscription is served; clients get a
`notice` when a worker's stream is lost and when it is back (one joining later is told
which workers are lost at that moment).  Messages are limited to `MAX_MESSAGE` bytes.
When the last subscription closes, the tasks are cancelled and `on_idle` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import urlencode

import msgspec
import websockets

from pilotfish.api.live import Subscription
from pilotfish.hub.client import BACKOFF_BASE, BACKOFF_MAX, WorkerClient
from pilotfish.model import Entry

log = logging.getLogger(__name__)

MAX_MESSAGE: Final = 16 * 1024 * 1024
_REFUSED: Final = (1008, 1013)  # the worker refused the filter or has too many clients


class _Message(msgspec.Struct):
    type: str
    entries: list[Entry] = msgspec.field(default_factory=list)
    count: int = 0
    unfiltered: int = 0
    error: str = ""


_DECODER: Final = msgspec.json.Decoder(_Message)


class FanIn:
    """See the module docstring.  `counters`: reconnects, bad_messages, refused."""

    def __init__(
        self,
        workers: Sequence[WorkerClient],
        query: str,
        *,
        open_timeout: float = 5.0,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        on_idle: Callable[[FanIn], None] | None = None,
    ) -> None:
        self.workers = list(workers)
        self.query = query
        self.open_timeout = open_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.counters = {"reconnects": 0, "bad_messages": 0, "refused": 0}
        self.connected: set[str] = set()
        self.lost: dict[str, str] = {}  # worker URL -> why its stream is gone
        self.subs: set[Subscription] = set()
        self._on_idle = on_idle
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, sub: Subscription) -> None:
        """Serve `sub` too (it leaves when it closes); it hears of workers lost now."""
        self.subs.add(sub)
        sub.on_close(lambda: self._remove(sub))
        for url, error in self.lost.items():
            sub.notify({"worker": url, "state": "down", "error": error})

    def _remove(self, sub: Subscription) -> None:
        self.subs.discard(sub)
        if not self.subs:
            self.stop()
            if self._on_idle is not None:
                self._on_idle(self)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._pump(w)) for w in self.workers]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Close every served subscription and wait until every task has ended."""
        for sub in list(self.subs):
            sub.close()
        self.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_connected(self, timeout: float) -> bool:
        """True once every worker's stream is open and subscribed (it said hello)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.connected) < len(self.workers):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def _notify(self, notice: dict[str, object]) -> None:
        for sub in list(self.subs):
            sub.notify(notice)

    async def _pump(self, worker: WorkerClient) -> None:
        delay = self.backoff_base
        url = f"{worker.ws_url}/api/stream?{urlencode({'q': self.query})}"
        while True:
            error = ""
            try:
                async with websockets.connect(
                    url, open_timeout=self.open_timeout, max_size=MAX_MESSAGE, max_queue=64
                ) as ws:
                    if await self._hello(ws):
                        self.connected.add(worker.url)
                        if self.lost.pop(worker.url, None) is not None:
                            self._notify({"worker": worker.url, "state": "up"})
                        delay = self.backoff_base
                        await self._read(ws)
                    error = "stream closed"
                    if ws.close_code in _REFUSED:
                        self.counters["refused"] += 1
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self.connected.discard(worker.url)
            if worker.url not in self.lost:
                self.lost[worker.url] = error[:200]
                self._notify({"worker": worker.url, "state": "down", "error": error[:200]})
            self.counters["reconnects"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _hello(self, ws: websockets.ClientConnection) -> bool:
        """Wait for the worker's hello: it has subscribed when it sends it."""
        async with asyncio.timeout(self.open_timeout):
            raw = await ws.recv()
        try:
            return _DECODER.decode(raw).type == "hello"
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.counters["bad_messages"] += 1
            return False

    async def _read(self, ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            try:
                message = _DECODER.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.counters["bad_messages"] += 1
                continue
            if message.type == "entries":
                subs = list(self.subs)
                for entry in message.entries:
                    for sub in subs:
                        sub.offer(entry)
            elif message.type == "dropped":
                for sub in list(self.subs):
                    sub.note_dropped(message.count)
                    sub.note_unfiltered(message.unfiltered)
