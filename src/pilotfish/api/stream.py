"""The WebSocket live stream (`/api/stream?q=`): server-side filtered entries, drops told.

After accepting, the server sends `{"type": "hello", "query": q}`, then the matching
entries in order as `{"type": "entries", "count": N, "entries": [{...}, ...]}`: a message
holds what waited for this client when it was sent (one entry while the stream is calm, up
to `MAX_BATCH` entries, split where one would pass `MAX_BATCH_BYTES`, when it is busy), so
a busy stream costs one WebSocket message per batch, not per entry.  The filter is compiled
once per
connection; an invalid one gets `{"type": "error", "error", "position"}` and close code 1008;
when the feed already has its maximum of clients the answer is an error and close code 1013.
Memory per client is bounded by its subscription queue (see `api.live`): when the client
falls behind, entries are dropped and counted, and the client is told with
`{"type": "dropped", "count": N, "unfiltered": M}` (coalesced, at most once per
`DROP_REPORT_S`): N matching entries it missed, and M entries lost before any filter ran
(the capture side's hand-over was full; they may or may not have matched).  Notices
about the source (a hub's worker going away or coming back) arrive as
`{"type": "notice", ...}`.  Anything
the client sends is read and discarded (so a closing client is noticed at once).

An entry's JSON text is encoded once for all the connections that send it
(`EncodedEntries`, shared by the app's connections, bounded to its last `size` entries);
a batch message is those texts joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from pilotfish.api.backend import Backend
from pilotfish.api.live import Subscription, TooManyClients
from pilotfish.api.params import MAX_VALUE
from pilotfish.model import Entry
from pilotfish.query import QueryError, compile_query

log = logging.getLogger(__name__)

DROP_REPORT_S = 0.25
MAX_BATCH = 512
MAX_BATCH_BYTES = 1024 * 1024
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
_ENCODER = msgspec.json.Encoder()


def query_error(text: str) -> dict[str, object] | None:
    """The error message for an invalid stream filter, or None when it is fine."""
    if len(text) > MAX_VALUE:
        return {"type": "error", "error": f"query longer than {MAX_VALUE}", "position": 0}
    if not text.strip():
        return None
    try:
        compile_query(text)
    except QueryError as exc:
        return {"type": "error", "error": str(exc), "position": exc.position}
    return None


class EncodedEntries:
    """The JSON text of recent entries, and of recent batch messages, encoded once for every
    client.

    Entry texts are keyed by the entry object itself (the feed hands the same object to
    every subscriber), so two entries that share an id never share a text; at most `size`
    are held.  Clients that keep up with the same query take the same batches, so a batch
    message is kept too (keyed by its entries' identities, up to `message_bytes` of
    messages in all) and the next client with that batch sends the same text.
    """

    def __init__(self, size: int = 4096, message_bytes: int = 8 * 1024 * 1024) -> None:
        self.size = size
        self.message_bytes = message_bytes
        self._texts: dict[int, tuple[Entry, str]] = {}
        self._messages: dict[tuple[int, int], tuple[list[Entry], list[str], int]] = {}
        self._held = 0  # bytes of the messages kept
        self.encoded = 0
        self.built = 0  # batch messages built (the rest were shared)

    def text(self, entry: Entry) -> str:
        cached = self._texts.get(id(entry))
        if cached is not None and cached[0] is entry:
            return cached[1]
        text = _ENCODER.encode(entry).decode()
        self.encoded += 1
        if len(self._texts) >= self.size:
            del self._texts[next(iter(self._texts))]
        self._texts[id(entry)] = (entry, text)
        return text

    def messages(self, entries: list[Entry]) -> list[str]:
        """The `entries` messages carrying `entries` in order: one, or more when together
        they would pass MAX_BATCH_BYTES."""
        key = (id(entries[0]), len(entries))
        hit = self._messages.get(key)
        if hit is not None and all(map(operator.is_, hit[0], entries)):
            return hit[1]
        out: list[str] = []
        parts: list[str] = []
        size = 0
        for entry in entries:
            text = self.text(entry)
            if parts and size + len(text) > MAX_BATCH_BYTES:
                out.append(_message(parts))
                parts, size = [], 0
            parts.append(text)
            size += len(text)
        out.append(_message(parts))
        self.built += len(out)
        self._keep(key, entries, out)
        return out

    def _keep(self, key: tuple[int, int], entries: list[Entry], texts: list[str]) -> None:
        size = sum(len(t) for t in texts)
        old = self._messages.pop(key, None)
        if old is not None:
            self._held -= old[2]
        while self._messages and self._held + size > self.message_bytes:
            self._held -= self._messages.pop(next(iter(self._messages)))[2]
        if size <= self.message_bytes:
            self._messages[key] = (entries, texts, size)
            self._held += size


def _message(parts: list[str]) -> str:
    body = ",".join(parts)
    return f'{{"type":"entries","count":{len(parts)},"entries":[{body}]}}'


def take_batch(sub: Subscription, first: Entry) -> list[Entry]:
    """`first` and what else waits in `sub` now, at most MAX_BATCH entries."""
    batch = [first]
    while len(batch) < MAX_BATCH:
        entry = sub.poll()
        if entry is None:
            break
        batch.append(entry)
    return batch


async def serve_stream(
    ws: WebSocket, backend: Backend, texts: EncodedEntries | None = None
) -> None:
    """Run one live-stream connection until either side leaves."""
    await ws.accept()
    text = ws.query_params.get("q", "")
    error = query_error(text)
    if error is not None:
        await ws.send_text(_ENCODER.encode(error).decode())
        await ws.close(code=POLICY_VIOLATION)
        return
    try:
        sub = await backend.subscribe(text)
    except TooManyClients as exc:
        await ws.send_text(_ENCODER.encode({"type": "error", "error": str(exc)}).decode())
        await ws.close(code=TRY_AGAIN_LATER)
        return
    sender = asyncio.ensure_future(_send(ws, sub, text, texts or EncodedEntries(1)))
    reader = asyncio.ensure_future(_discard_incoming(ws))
    try:
        await asyncio.wait((sender, reader), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sub.close()
        for task in (sender, reader):
            task.cancel()
        for task in (sender, reader):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close()


async def _discard_incoming(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _send(ws: WebSocket, sub: Subscription, text: str, texts: EncodedEntries) -> None:
    loop = asyncio.get_running_loop()
    encode = _ENCODER.encode
    await ws.send_text(encode({"type": "hello", "query": text}).decode())
    last_report = loop.time()
    while not sub.closed:
        entry = await sub.get(timeout=DROP_REPORT_S, notices=True)
        while sub.notices:
            notice = {"type": "notice", **sub.notices.popleft()}
            await ws.send_text(encode(notice).decode())
        if sub.unreported:
            now = loop.time()
            if now - last_report >= DROP_REPORT_S:
                count, unfiltered = sub.take_dropped()
                report = {"type": "dropped", "count": count, "unfiltered": unfiltered}
                await ws.send_text(encode(report).decode())
                last_report = now
        if entry is not None:
            for message in texts.messages(take_batch(sub, entry)):
                await ws.send_text(message)
