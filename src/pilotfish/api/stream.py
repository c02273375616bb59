"""The WebSocket live stream (`/api/stream?q=`): server-side filtered entries, drops told.

After accepting, the server sends `{"type": "hello", "query": q}`, then one
`{"type": "entry", "entry": {...}}` per matching entry.  The filter is compiled once per
connection; an invalid one gets `{"type": "error", "error", "position"}` and close code 1008;
when the feed already has its maximum of clients the answer is an error and close code 1013.
Memory per client is bounded by its subscription queue (see `api.live`): when the client
falls behind, entries are dropped and counted, and the client is told with
`{"type": "dropped", "count": N}` (coalesced, at most once per `DROP_REPORT_S`).  Notices
about the source (a hub's worker going away or coming back) arrive as
`{"type": "notice", ...}`.  Anything
the client sends is read and discarded (so a closing client is noticed at once).

An entry's message text is encoded once for all the connections that send it
(`EncodedEntries`, shared by the app's connections, bounded to its last `size` entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from pilotfish.api.backend import Backend
from pilotfish.api.live import Subscription, TooManyClients
from pilotfish.api.params import MAX_VALUE
from pilotfish.model import Entry
from pilotfish.query import QueryError, compile_query

log = logging.getLogger(__name__)

DROP_REPORT_S = 0.25
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
    """The `{"type": "entry", ...}` text of recent entries, encoded once for every client.

    Keyed by the entry object itself (the feed hands the same object to every subscriber),
    so two entries that share an id never share a text.  Holds at most `size` entries.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._texts: dict[int, tuple[Entry, str]] = {}
        self.encoded = 0

    def text(self, entry: Entry) -> str:
        cached = self._texts.get(id(entry))
        if cached is not None and cached[0] is entry:
            return cached[1]
        text = _ENCODER.encode({"type": "entry", "entry": entry}).decode()
        self.encoded += 1
        if len(self._texts) >= self.size:
            del self._texts[next(iter(self._texts))]
        self._texts[id(entry)] = (entry, text)
        return text


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
        if sub.dropped > sub.reported:
            now = loop.time()
            if now - last_report >= DROP_REPORT_S:
                count = sub.take_dropped()
                await ws.send_text(encode({"type": "dropped", "count": count}).decode())
                last_report = now
        if entry is not None:
            await ws.send_text(texts.text(entry))
