"""HTTP/1.0 and HTTP/1.1 over one TCP connection: httptools parsers in, exchanges out.

One httptools parser per direction; requests wait in a FIFO and each final response takes the
oldest (keep-alive and pipelining).  The Python callbacks only collect pieces into lists; the
work (header dict, body decoding, sizes) happens once per message.

Behaviour and bounds:
- HEAD responses (and 2xx answers to CONNECT) carry no body: while such a request waits, the
  server stream is fed in pieces ending at each blank line so the parser can be cut right
  after the header block.  1xx interim responses are not final: their codes end up in the
  final response's `info["informational"]`.  204/304 have no body (the parser knows).
- A response with neither length nor chunking ends when the connection closes (`close()`).
- 101 Switching Protocols -> the exchange gets `upgrade` (the Upgrade header's first token,
  e.g. "websocket", "h2c"); a 2xx to CONNECT -> upgrade "tunnel".  After that the dissector
  ignores everything (the pipeline hands the connection over).  The client bytes sent after
  an Upgrade/CONNECT request are held (up to `max_header_bytes`) until the answer shows
  whether the switch happened.
- Both directions start in "sync" mode: bytes before the first request line / status line are
  skipped (mid-stream pickup).  A response without a request gets the "no-request" flag.
  If more than `_SYNC_GIVE_UP` bytes are skipped before any message was parsed, DissectError.
- gap(): inside a body of known length the bytes are stood in for and the message is flagged
  "gap"; anywhere else the message in progress is closed with "gap" and the direction
  resynchronises at the next start line.
- header block larger than `max_header_bytes` -> DissectError; more than
  `max_pending_messages` waiting requests -> the oldest is emitted with "no-response".
- `Payload.size` is rebuilt from the parsed message assuming canonical framing (one space
  after each colon, CRLF line ends, no chunk extensions): exact for ordinary traffic.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import httptools

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.body import EMPTY_BODY, BodyDecoder, RenderedBody
from pilotfish.dissect.httpstart import (
    MAYBE,
    REQUEST_LINE,
    STATUS_LINE,
    YES,
    sniff_request,
    sniff_response,
)
from pilotfish.model import CLIENT, SERVER, Exchange, Payload, summary_of

_SYNC, _PARSE, _HELD = 0, 1, 2
_SYNC_GIVE_UP: Final = 256 * 1024
_SNIFF: Final = 64  # bytes looked at to accept a clean start
_FILLER: Final = bytes(64 * 1024)
_BLANK_LINE: Final = b"\r\n\r\n"
_BODYLESS: Final = frozenset(("HEAD", "CONNECT"))

# A waiting request: (ts, method, path, payload, flags, held) -- held: the client stream is
# paused behind it (Upgrade or CONNECT) until its response arrives.
_Request = tuple[float, str, str, Payload, list[str], bool]


class _Side:
    """One direction: its parser, its sync state and the message being collected."""

    __slots__ = (
        "begun",
        "body",
        "body_wire",
        "chunk_mark",
        "chunk_overhead",
        "cut",
        "direction",
        "filling",
        "first_ts",
        "flags",
        "head_counted",
        "head_fed",
        "head_size",
        "headers",
        "held",
        "held_gap",
        "in_head",
        "mode",
        "msg_ts",
        "n_head",
        "owner",
        "parser",
        "skipped",
        "sync_buf",
        "sync_ts",
        "tail3",
        "text",
        "ts",
    )

    def __init__(self, owner: Http1Dissector, direction: int) -> None:
        self.owner = owner
        self.direction = direction
        self.mode = _SYNC
        self.parser: Any = None
        self.sync_buf = b""
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
        self.head_fed = 0
        self.head_counted = False
        self.cut = False
        self.filling = False
        self.text: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.n_head = 0
        self.head_size = 0
        self.body: BodyDecoder | None = None
        self.body_wire = 0
        self.chunk_mark = -1
        self.chunk_overhead = 0
        self.flags: list[str] = []

    def new_parser(self) -> None:
        if self.direction == CLIENT:
            self.parser = httptools.HttpRequestParser(self)
        else:
            self.parser = httptools.HttpResponseParser(self)
        self.mode = _PARSE
        self.begun = self.in_head = self.cut = False
        self.tail3 = b""

    # --- httptools callbacks: keep them tiny ---------------------------------------------

    def on_message_begin(self) -> None:
        self.begun = self.in_head = True
        self.head_fed = 0
        self.head_counted = False
        if self.first_ts is None:
            self.msg_ts = self.ts
        else:
            self.msg_ts, self.first_ts = self.first_ts, None
        self.text = []
        self.headers = []
        self.body = None
        self.body_wire = self.chunk_overhead = 0
        self.chunk_mark = -1
        self.flags = []

    def on_url(self, url: bytes) -> None:
        self.text.append(url)

    on_status = on_url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.n_head = len(self.headers)
        self.owner._headers_done(self)

    def on_body(self, data: bytes) -> None:
        self.body_wire += len(data)
        if self.filling:
            return
        if self.body is None:
            self.body = self.owner._decoder_for(self.headers)
        self.body.feed(data)

    def on_chunk_header(self) -> None:
        self.chunk_mark = self.body_wire  # >= 0: the body is chunked

    def on_chunk_complete(self) -> None:
        self.chunk_overhead += len(f"{self.body_wire - self.chunk_mark:x}") + 4

    def on_message_complete(self) -> None:
        self.begun = False
        self.cut = False
        self.owner._message_done(self)


class Http1Dissector:
    """HTTP/1.x dissector for one connection (see the module docstring)."""

    protocol = "http"

    def __init__(self, limits: DissectLimits) -> None:
        self._limits = limits
        self._pending: deque[_Request] = deque()
        self._bodyless = 0  # HEAD/CONNECT requests among _pending
        self._informational: list[int] = []
        self._messages = 0
        self._done = False
        self._out: list[Exchange] = []
        self._sides = (_Side(self, CLIENT), _Side(self, SERVER))

    # --- the Dissector contract ----------------------------------------------------------

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        if self._done or not data:
            return []
        side = self._sides[direction]
        side.ts = ts
        out = self._out = []
        if side.mode == _PARSE and not (direction == SERVER and self._bodyless):
            rest = self._parse(side, data)
            if rest:
                self._slow(side, rest)
        else:
            self._slow(side, data)
        return out

    def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
        if self._done or size <= 0:
            return []
        side = self._sides[direction]
        side.ts = ts
        out = self._out = []
        if side.mode == _PARSE and side.begun and not side.in_head:
            remaining = self._body_remaining(side)
            if remaining > 0:
                side.flags.append("gap")
                self._fill(side, min(size, remaining))
                if size <= remaining:
                    return out
                size -= remaining
        if side.mode == _PARSE and side.begun:
            side.flags.append("gap")
            self._abandon(side)
        elif side.mode == _HELD:
            side.held = b""
            side.held_gap = True
            return out
        side.mode = _SYNC
        side.sync_buf = b""
        side.skipped += size
        return out

    def close(self, ts: float) -> list[Exchange]:
        if self._done:
            return []
        out = self._out = []
        client, server = self._sides
        if server.mode == _PARSE and server.begun:
            if server.in_head or self._body_remaining(server) > 0 or server.chunk_mark >= 0:
                server.flags.append("truncated")
            self._abandon(server)
        if client.mode == _PARSE and client.begun:
            client.flags.append("truncated")
            self._abandon(client)
        while self._pending:
            self._no_response(self._pending.popleft())
        self._done = True
        return out

    def pending_since(self) -> float | None:
        if self._done:
            return None
        stamps = [side.msg_ts for side in self._sides if side.begun]
        if self._pending:
            stamps.append(self._pending[0][0])
        return min(stamps) if stamps else None

    # --- feeding ------------------------------------------------------------------------

    def _parse(self, side: _Side, data: bytes) -> bytes:
        """Feed the parser; return bytes it did not take (after an upgrade)."""
        try:
            side.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            return self._upgraded(side, data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, DissectError):
                raise cause from None
            raise DissectError(f"http: {exc}") from exc
        if side.in_head:
            if side.head_counted:
                side.head_fed += len(data)
                if side.head_fed > self._limits.max_header_bytes:
                    raise DissectError("http: header block over max_header_bytes")
            side.head_counted = True
        return b""

    def _slow(self, side: _Side, data: bytes) -> None:
        """Sync scanning, held client bytes and HEAD-aware server feeding."""
        while data and not self._done:
            if side.mode == _SYNC:
                data = self._sync(side, data)
            elif side.mode == _HELD:
                room = self._limits.max_header_bytes - len(side.held)
                side.held += data[: max(0, room)]
                return
            elif side.direction == SERVER and self._bodyless:
                joined = side.tail3 + data
                end = joined.find(_BLANK_LINE)
                cut = len(data) if end < 0 else end + 4 - len(side.tail3)
                piece, data = data[:cut], data[cut:]
                side.tail3 = (side.tail3 + piece)[-3:]
                rest = self._parse(side, piece)
                if side.cut and side.begun:
                    side.on_message_complete()
                    side.new_parser()
                data = rest + data
            else:
                data = self._parse(side, data)

    def _sync(self, side: _Side, data: bytes) -> bytes:
        """Skip to the next start line; return the bytes from it on (b"" while searching)."""
        held = len(side.sync_buf)
        buf = side.sync_buf + data if held else data
        if not held:
            side.sync_ts = side.ts
        client = side.direction == CLIENT
        if side.parser is None:  # the very first bytes: a clean start needs no full line
            verdict = (sniff_request if client else sniff_response)(buf[:_SNIFF])
            if verdict == MAYBE and len(buf) < _SNIFF:
                side.sync_buf = buf
                return b""
            if verdict == YES:
                side.sync_buf = b""
                side.new_parser()
                side.first_ts = side.sync_ts if held else None
                return buf
        found = (REQUEST_LINE if client else STATUS_LINE).search(buf)
        if found is not None:
            side.skipped += found.start()
            side.sync_buf = b""
            side.new_parser()
            side.first_ts = side.sync_ts if found.start() < held else None
            self._check_sync(side)
            return buf[found.start() :]
        keep = buf[buf.rfind(b"\n") + 1 :][-self._limits.max_header_bytes :]
        side.skipped += len(buf) - len(keep)
        if keep and len(keep) <= len(data):
            side.sync_ts = side.ts  # the kept partial line arrived in this feed
        side.sync_buf = keep
        self._check_sync(side)
        return b""

    def _check_sync(self, side: _Side) -> None:
        if side.skipped > _SYNC_GIVE_UP and not self._messages:
            raise DissectError("http: no message start found")

    def _fill(self, side: _Side, size: int) -> None:
        """Stand in for lost body bytes so the parser keeps its framing."""
        side.filling = True
        try:
            while size > 0:
                step = min(size, len(_FILLER))
                self._parse(side, _FILLER[:step])
                size -= step
        finally:
            side.filling = False

    def _body_remaining(self, side: _Side) -> int:
        """Bytes still due in a Content-Length body, -1 when the length is not known."""
        for name, value in side.headers[: side.n_head]:
            if name.lower() == b"content-length":
                try:
                    return max(0, int(value) - side.body_wire)
                except ValueError:
                    return -1
        return -1

    def _abandon(self, side: _Side) -> None:
        """End the message in progress as it is; the direction starts over."""
        if side.in_head:
            side.n_head = len(side.headers)
            self._headers_done(side)
        side.begun = False
        self._message_done(side)
        side.mode = _SYNC
        side.sync_buf = b""

    def _upgraded(self, side: _Side, rest: bytes) -> bytes:
        if side.direction == CLIENT:
            side.mode = _HELD
            side.held = b""
            return rest
        return b""  # the 101 completed the exchange and set _done

    # --- messages -----------------------------------------------------------------------

    def _headers_done(self, side: _Side) -> None:
        size = 2
        for name, value in side.headers:
            size += len(name) + len(value) + 4
        if size > self._limits.max_header_bytes:
            raise DissectError("http: header block over max_header_bytes")
        side.head_size = size + sum(map(len, side.text))
        if side.direction == SERVER and self._pending:
            method = self._pending[0][1]
            if method in _BODYLESS:
                status = side.parser.get_status_code()
                side.cut = (method == "HEAD" and status >= 200) or 200 <= status < 300

    def _decoder_for(self, raw: list[tuple[bytes, bytes]]) -> BodyDecoder:
        encoding = ""
        ctype = None
        for name, value in raw:
            lower = name.lower()
            if lower == b"content-encoding":
                encoding = value.decode("latin-1")
            elif lower == b"content-type":
                ctype = value.decode("latin-1")
        return BodyDecoder(encoding, ctype, self._limits)

    def _payload(self, side: _Side, start_line: int) -> Payload:
        headers: dict[str, str] = {}
        trailer = 0
        for i, (raw_name, raw_value) in enumerate(side.headers):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if i >= side.n_head:
                trailer += len(raw_name) + len(raw_value) + 4
            old = headers.get(name)
            if old is None:
                headers[name] = value
            else:
                headers[name] = old + ("\n" if name == "set-cookie" else ", ") + value
        body: RenderedBody = side.body.finish() if side.body is not None else EMPTY_BODY
        size = start_line + side.head_size + side.body_wire + side.chunk_overhead + trailer
        version = side.parser.get_http_version() if side.parser is not None else "1.1"
        return Payload(
            size,
            headers,
            body.body,
            body.body_size,
            body.truncated,
            body.encoding,
            "HTTP/" + version,
            None,
            None,
            body.info,
        )

    def _message_done(self, side: _Side) -> None:
        self._messages += 1
        if side.direction == CLIENT:
            self._request_done(side)
        else:
            self._response_done(side)

    def _request_done(self, side: _Side) -> None:
        parser = side.parser
        # Until the target starts the method may not be parsed yet (message cut short).
        method = parser.get_method().decode("ascii", "replace") if side.text else ""
        path = b"".join(side.text).decode("latin-1")
        payload = self._payload(side, len(method) + 12)
        held = bool(method) and (parser.should_upgrade() or method == "CONNECT")
        self._pending.append((side.msg_ts, method, path, payload, side.flags, held))
        if method in _BODYLESS:
            self._bodyless += 1
        if len(self._pending) > self._limits.max_pending_messages:
            self._no_response(self._pop())

    def _response_done(self, side: _Side) -> None:
        code = side.parser.get_status_code()
        status = code if code else None  # None: the status line was cut short
        if 100 <= code < 200 and code != 101:
            if len(self._informational) < 16:
                self._informational.append(code)
            return
        payload = self._payload(side, 15)  # "HTTP/1.1 200 " + CRLF; the reason is in head_size
        if self._informational:
            payload.info = {**(payload.info or {}), "informational": self._informational}
            self._informational = []
        request = self._pop() if self._pending else None
        upgrade: str | None = None
        if code == 101:
            upgrade = payload.headers.get("upgrade", "unknown").split(",")[0].strip().lower()
        elif request is not None and request[1] == "CONNECT" and 200 <= code < 300:
            upgrade = "tunnel"
        if upgrade is not None:
            self._done = True
        elif request is not None and request[5]:
            self._release_held()
        if request is None:
            self._out.append(
                Exchange(
                    "http",
                    None,
                    side.msg_ts,
                    "",
                    "",
                    status,
                    summary_of("", "", status).strip(),
                    None,
                    payload,
                    ["no-request", *side.flags],
                    upgrade,
                )
            )
            return
        ts, method, path, req_payload, req_flags, _ = request
        self._out.append(
            Exchange(
                "http",
                ts,
                side.msg_ts,
                method,
                path,
                status,
                summary_of(method, path, status),
                req_payload,
                payload,
                [*req_flags, *side.flags],
                upgrade,
            )
        )

    def _pop(self) -> _Request:
        request = self._pending.popleft()
        if request[1] in _BODYLESS:
            self._bodyless -= 1
        return request

    def _no_response(self, request: _Request) -> None:
        ts, method, path, payload, flags, _ = request
        self._out.append(
            Exchange(
                "http",
                ts,
                None,
                method,
                path,
                None,
                summary_of(method, path, None),
                payload,
                None,
                [*flags, "no-response"],
            )
        )

    def _release_held(self) -> None:
        """The server did not switch protocols: parse the client bytes held back."""
        client = self._sides[CLIENT]
        if client.mode != _HELD:
            return
        held, client.held = client.held, b""
        if client.held_gap:
            client.held_gap = False
            client.mode = _SYNC
            client.sync_buf = b""
        else:
            client.new_parser()
        if held:
            self._slow(client, held)
