"""One direction of an HTTP/1 connection: its httptools parser, sync state and the message
being collected.

The httptools callbacks live here and only collect pieces (start-line text, header pairs, body
chunks); everything else is done once per message by the owner through the callables given
at construction: `headers_done` when the header block is complete, `done` when the message
is.  Identity bodies are kept as pieces up to `body_limit`; coded bodies go to a
`BodyDecoder` made by `make_decoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httptools

from pilotfish.dissect.body import BodyDecoder
from pilotfish.model import CLIENT, Payload

SYNC, PARSE, HELD = 0, 1, 2  # looking for a start line / parsing / paused behind an Upgrade


class Side:
    """One direction: its parser, its sync state and the message being collected."""

    __slots__ = (
        "accounted",
        "begun",
        "body",
        "body_limit",
        "body_wire",
        "chunk_mark",
        "chunk_overhead",
        "coded",
        "cut",
        "direction",
        "done",
        "fed",
        "filling",
        "first_ts",
        "flags",
        "fresh",
        "hdict",
        "head_fed",
        "head_size",
        "headers",
        "headers_done",
        "held",
        "held_gap",
        "in_head",
        "last_payload",
        "make_decoder",
        "method",
        "mode",
        "msg_ts",
        "n_head",
        "parser",
        "raw",
        "seen",
        "skipped",
        "status",
        "sync_buf",
        "sync_ts",
        "tail3",
        "text",
        "ts",
        "version",
    )

    def __init__(
        self,
        direction: int,
        done: Callable[[Side], None],
        headers_done: Callable[[Side], None],
        make_decoder: Callable[[dict[str, str]], BodyDecoder],
        body_limit: int,
    ) -> None:
        self.headers_done = headers_done
        self.make_decoder = make_decoder
        self.body_limit = body_limit
        self.direction = direction
        self.done = done
        self.mode = SYNC
        self.parser: Any = None
        self.fed = self.accounted = 0
        self.last_payload: Payload | None = None  # finished, size not yet reconciled
        self.fresh = True  # nothing seen yet: a message may start at the very first byte
        self.sync_buf = bytearray()  # partial line while looking for a start line
        self.sync_ts = 0.0  # when the first byte of sync_buf arrived
        self.skipped = 0
        self.held = b""
        self.held_gap = False
        self.tail3 = b""
        self.ts = 0.0
        self.first_ts: float | None = None  # first byte of a start line held while syncing
        self.msg_ts = 0.0
        self.begun = False
        self.in_head = False
        self.head_fed = -1
        self.cut = False
        self.filling = False
        self.text: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.hdict: dict[str, str] = {}
        self.n_head = 0
        self.head_size = 0
        self.body: BodyDecoder | None = None  # bodies with a Content-Encoding
        self.coded = False
        self.raw: list[bytes] = []  # identity bodies: pieces up to the body limit
        self.seen = 0  # identity body bytes seen (stand-ins for lost bytes excluded)
        self.body_wire = 0
        self.chunk_mark = -1
        self.chunk_overhead = 0
        self.flags: tuple[str, ...] = ()
        # the start line, once known: method (requests), status (responses), "1.1"/"1.0"
        self.method = b""
        self.status = 0
        self.version = ""

    def new_parser(self) -> None:
        if self.direction == CLIENT:
            self.parser = httptools.HttpRequestParser(self)
        else:
            self.parser = httptools.HttpResponseParser(self)
        self.mode = PARSE
        self.begun = self.in_head = self.cut = False
        self.tail3 = b""
        self.fed = self.accounted = 0  # bytes given to this parser / rebuilt into sizes
        self.last_payload = None

    # --- httptools callbacks: keep them tiny ---------------------------------------------

    def on_message_begin(self) -> None:
        self.begun = self.in_head = True
        self.head_fed = -1  # the segment the message starts in is not counted
        if self.first_ts is None:
            self.msg_ts = self.ts
        else:
            self.msg_ts, self.first_ts = self.first_ts, None
        self.text = []
        self.headers = []
        self.body = None
        self.raw = []
        self.seen = 0
        self.body_wire = self.chunk_overhead = 0
        self.chunk_mark = -1
        self.flags = ()

    def on_url(self, url: bytes) -> None:
        self.text.append(url)

    def on_status(self, status: bytes) -> None:
        self.text.append(status)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def read_start_line(self) -> None:
        """Take the start line's parts from the parser (they are known once it is read)."""
        parser = self.parser
        if self.direction == CLIENT:
            self.method = parser.get_method()
        else:
            self.status = parser.get_status_code()
        self.version = parser.get_http_version()

    def on_headers_complete(self) -> None:
        self.read_start_line()
        self.in_head = False
        self.n_head = len(self.headers)
        self.headers_done(self)

    def on_body(self, data: bytes) -> None:
        self.body_wire += len(data)
        if self.filling:
            return
        if self.coded:
            if self.body is None:
                self.body = self.make_decoder(self.hdict)
            self.body.feed(data)
            return
        if self.seen < self.body_limit:
            self.raw.append(data)
        self.seen += len(data)

    def on_chunk_header(self) -> None:
        self.chunk_mark = self.body_wire  # >= 0: the body is chunked

    def on_chunk_complete(self) -> None:
        self.chunk_overhead += len(f"{self.body_wire - self.chunk_mark:x}") + 4

    def on_message_complete(self) -> None:
        self.begun = self.cut = False
        self.done(self)
