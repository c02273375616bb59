"""Entries from the capture process to the API process over a Unix stream socket.

Frames are a 4-byte big-endian length followed by msgpack: an entry, or an integer saying
how many entries the sender dropped since its last such frame.  `FrameDecoder` is the
sans-IO half (bytes in, entries out, dropped counts added to `lost`): frames longer than
`max_frame` mean the stream is corrupt (it raises `FeedError`, the receiver closes that
connection and counts it); a frame that is neither is skipped and counted in `bad_frames`.

`FeedSender` (capture side) never blocks: the socket is non-blocking, unsent bytes wait in a
buffer of at most `max_buffer` bytes, and an entry that does not fit, or that arrives while
there is no receiver, is dropped and counted (`dropped`, `unconnected`).  `publish` writes
only once `FLUSH_AT` bytes wait: the owner calls `flush()` once per pass of its loop, so a
batch of entries costs one system call (and reaches the receiver as one read) rather than
one per entry.  Entries dropped for
a full buffer are announced to the receiver with a count frame as soon as there is room, so
the live clients hear of them; entries dropped while no receiver was connected are not (no
client was listening).  After losing its receiver it tries to reconnect at most once per
`retry_s` (clock injected).

`FeedReceiver` (API side) listens on the socket path with asyncio and publishes every
decoded entry to a `LiveFeed`, and every count frame to `LiveFeed.note_lost`; it accepts at
most `max_clients` senders at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from pilotfish.api.live import LiveFeed
from pilotfish.model import Entry

log = logging.getLogger(__name__)

_LEN = struct.Struct("!I")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024
_READ_SIZE = 256 * 1024
FLUSH_AT = 64 * 1024  # publish writes once this much waits; the owner's loop flushes the rest


class FeedError(ValueError):
    """The byte stream cannot be framed any more (the connection must be dropped)."""


def encode_frame(item: Entry | int, encoder: msgspec.msgpack.Encoder | None = None) -> bytes:
    """One length-prefixed frame holding an entry, or a count of dropped entries."""
    body = (encoder or msgspec.msgpack.Encoder()).encode(item)
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Sans-IO frame decoder: `feed(data)` returns the entries completed by `data`."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._decoder = msgspec.msgpack.Decoder(Entry | int)
        self.frames = 0
        self.bad_frames = 0
        self.lost = 0  # entries the sender said it dropped

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (at most `max_frame` + 4)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Entry]:
        buf = self._buf
        buf += data
        out: list[Entry] = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if size > self.max_frame:
                raise FeedError(f"frame of {size} bytes exceeds the {self.max_frame} limit")
            if end - pos - 4 < size:
                break
            body = memoryview(buf)[pos + 4 : pos + 4 + size]
            pos += 4 + size
            self.frames += 1
            try:
                item = self._decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.bad_frames += 1
                continue
            finally:
                body.release()
            if isinstance(item, int):
                if item > 0:
                    self.lost += item
                else:
                    self.bad_frames += 1
            else:
                out.append(item)
        del buf[:pos]
        return out


class FeedSender:
    """Capture side: `publish(entry)` never blocks (see the module docstring)."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        sock: socket.socket | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if path is None and sock is None:
            raise ValueError("FeedSender needs a socket path or a connected socket")
        self.path = None if path is None else str(path)
        self.max_buffer = max_buffer
        self.retry_s = retry_s
        self._clock = clock
        self._encoder = msgspec.msgpack.Encoder()
        self._out = bytearray()
        self._sock = sock
        self._next_try = 0.0
        self.sent = 0  # entries fully queued for the receiver
        self.dropped = 0  # entries dropped because the buffer was full
        self._untold = 0  # ... of which the receiver has not been told yet
        self.unconnected = 0  # entries dropped while no receiver was connected
        self.disconnects = 0
        if sock is not None:
            sock.setblocking(False)

    @property
    def buffered(self) -> int:
        return len(self._out)

    def publish(self, entry: Entry) -> None:
        if self._sock is None and not self._connect():
            self.unconnected += 1
            return
        frame = encode_frame(entry, self._encoder)
        if len(self._out) + len(frame) > self.max_buffer:
            self.flush()
            if len(self._out) + len(frame) > self.max_buffer:
                self.dropped += 1
                self._untold += 1
                return
        self._tell_dropped()
        self._out += frame
        self.sent += 1
        if len(self._out) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write what the socket takes now; call from the capture loop when idle too."""
        sock = self._sock
        if self._untold and sock is not None:
            self._tell_dropped()
        while self._out and sock is not None:
            try:
                n = sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._lost()
                return
            del self._out[:n]

    def _tell_dropped(self) -> None:
        """Queue a count frame for the drops not told yet, if it fits."""
        if self._untold:
            frame = encode_frame(self._untold, self._encoder)
            if len(self._out) + len(frame) <= self.max_buffer:
                self._out += frame
                self._untold = 0

    def counters(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "unconnected": self.unconnected,
            "disconnects": self.disconnects,
            "buffered": len(self._out),
        }

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self) -> bool:
        now = self._clock()
        if self.path is None or now < self._next_try:
            return False
        self._next_try = now + self.retry_s
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return False
        self._sock = sock
        return True

    def _lost(self) -> None:
        self.disconnects += 1
        self._out.clear()  # a partial frame cannot be continued on a new connection
        self._untold = 0  # the next receiver serves other clients
        self.close()


class FeedReceiver:
    """API side: accept senders on `path` and publish their entries to `feed`."""

    def __init__(
        self, path: Path | str, feed: LiveFeed, *, max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        self.path = str(path)
        self.feed = feed
        self.max_frame = max_frame
        self.max_clients = 8
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.received = 0
        self.bad_frames = 0
        self.broken_streams = 0
        self.refused = 0
        self.lost = 0  # entries the senders said they dropped

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def counters(self) -> dict[str, int]:
        return {
            "received": self.received,
            "bad_frames": self.bad_frames,
            "broken_streams": self.broken_streams,
            "refused": self.refused,
            "lost": self.lost,
            "senders": len(self._tasks),
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._tasks) >= self.max_clients or task is None:
            self.refused += 1
            writer.close()
            return
        self._tasks.add(task)
        decoder = FrameDecoder(self.max_frame)
        try:
            while data := await reader.read(_READ_SIZE):
                before, lost = decoder.bad_frames, decoder.lost
                for entry in decoder.feed(data):
                    self.received += 1
                    self.feed.publish(entry)
                self.bad_frames += decoder.bad_frames - before
                if decoder.lost > lost:
                    self.lost += decoder.lost - lost
                    self.feed.note_lost(decoder.lost - lost)
        except FeedError as exc:
            self.broken_streams += 1
            log.warning("live feed: dropping a sender: %s", exc)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
