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
- A final response that arrives while its request is still coming in (an early 413/401) waits
  for that request to end and is paired with it, flagged "early-response".
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
- `Payload.size` is rebuilt from the parsed pieces (httptools gives no offsets) and then
  reconciled with the bytes actually fed whenever the parser is between messages, so the
  sizes always add up to the bytes on the wire; a framing detail the rebuild cannot see
  (extra spaces, chunk extensions) is charged to the last message of that stretch.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import httptools

from pilotfish.config import DissectLimits
from pilotfish.dissect import http1whole
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.body import BodyDecoder, render_chunks
from pilotfish.dissect.http1side import HELD, PARSE, SYNC, Side
from pilotfish.dissect.httpheaders import header_dict
from pilotfish.dissect.httpstart import (
    MAYBE,
    METHODS,
    REQUEST_LINE,
    STATUS_LINE,
    YES,
    sniff_request,
    sniff_response,
)
from pilotfish.model import CLIENT, SERVER, Exchange, Payload, summary_of

_SYNC_GIVE_UP: Final = 256 * 1024
_SNIFF: Final = 64  # bytes looked at to accept a clean start
_FILLER: Final = bytes(64 * 1024)
_BLANK_LINE: Final = b"\r\n\r\n"
_BODYLESS: Final = frozenset(("HEAD", "CONNECT"))
_IDENTITY: Final = frozenset(("", "identity"))
_METHOD_NAMES: Final = {m.encode(): m for m in METHODS}
_VERSIONS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
# A waiting request: (ts, method, path, payload, flags, held) -- held: the client stream is
# paused behind it (Upgrade or CONNECT) until its response arrives.
_Request = tuple[float, str, str, Payload, tuple[str, ...], bool]


class Http1Dissector:
    """HTTP/1.x dissector for one connection (see the module docstring)."""

    protocol = "http"

    def __init__(self, limits: DissectLimits) -> None:
        self._limits = limits
        self._pending: deque[_Request] = deque()
        self._bodyless = 0  # HEAD/CONNECT requests among _pending
        self._informational: list[int] = []
        # a final response that came while its request was still arriving (e.g. 413 early)
        self._early: tuple[float, int | None, Payload, tuple[str, ...]] | None = None
        self._messages = 0
        self._done = False
        self._out: list[Exchange] = []
        self._sides = (
            Side(
                CLIENT, self._request_done, self._headers_done, self._decoder_for, limits.body_limit
            ),
            Side(
                SERVER,
                self._response_done,
                self._headers_done,
                self._decoder_for,
                limits.body_limit,
            ),
        )

    # --- the Dissector contract ----------------------------------------------------------

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        if self._done or not data:
            return []
        side = self._sides[direction]
        side.ts = ts
        out = self._out = []
        if side.mode == PARSE and not (direction == SERVER and self._bodyless):
            if not side.begun:
                data = self._whole(side, data)
                if not data:
                    return out
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
        if direction == SERVER and self._pending and not (side.mode == PARSE and side.begun):
            # the start of an answer may be in the hole: whatever the oldest request gets
            # (its response or none) is marked
            first = self._pending[0]
            if "gap" not in first[4]:
                self._pending[0] = (*first[:4], (*first[4], "gap"), first[5])
        if side.mode == PARSE and side.begun and not side.in_head:
            remaining = self._body_remaining(side)
            if remaining > 0:
                side.flags += ("gap",)
                self._fill(side, min(size, remaining))
                if size <= remaining:
                    return out
                size -= remaining
        if side.mode == PARSE and side.begun:
            side.flags += ("gap",)
            self._abandon(side)
        elif side.mode == HELD:
            side.held = b""
            side.held_gap = True
            return out
        side.mode = SYNC
        side.fresh = False  # what follows a gap starts anywhere
        side.sync_buf.clear()
        side.skipped += size
        return out

    def close(self, ts: float) -> list[Exchange]:
        if self._done:
            return []
        out = self._out = []
        client, server = self._sides
        if server.mode == PARSE and server.begun:
            if server.in_head or self._body_remaining(server) > 0 or server.chunk_mark >= 0:
                server.flags += ("truncated",)
            self._abandon(server)
        if client.mode == PARSE and client.begun:
            client.flags += ("truncated",)
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

    def _parse(self, side: Side, data: bytes) -> bytes:
        """Feed the parser; return bytes it did not take (after an upgrade)."""
        try:
            side.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            side.fed += exc.args[0]
            _reconcile(side)
            return self._upgraded(side, data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, DissectError):
                raise cause from None
            raise DissectError(f"http: {exc}") from exc
        if side.in_head:
            if side.head_fed < 0:
                side.head_fed = 0
            else:
                side.head_fed += len(data)
                if side.head_fed > self._limits.max_header_bytes:
                    raise DissectError("http: header block over max_header_bytes")
        if side.begun:
            side.fed += len(data)
        elif side.last_payload is not None:  # between messages: settle the sizes
            # (it stays the last message: stray bytes in a later segment are its own too)
            side.last_payload.size += side.fed + len(data) - side.accounted
            side.fed = side.accounted = 0
        else:
            side.fed = side.accounted = 0
        return b""

    def _whole(self, side: Side, data: bytes) -> bytes:
        """Take the messages at the front of `data` that are there whole (http1whole); return
        the rest, for the incremental parser.  The parser is between messages."""
        whole = http1whole.request if side.direction == CLIENT else http1whole.response
        max_head = self._limits.max_header_bytes
        at = 0
        while True:
            message = whole(data, at, max_head)
            if message is None:
                break
            end, method, text, status, version, hdict, head_len, body = message
            if not _keeps_alive(hdict, version):
                break  # the parser must see a closing message itself: it refuses what follows
            _reconcile(side)  # the incremental parser's last message is settled first
            side.on_message_begin()
            side.in_head = False
            side.method, side.status, side.version = method, status, version
            side.text = [text]
            side.hdict = hdict
            side.n_head = 0
            coding = hdict.get("content-encoding")
            side.coded = coding is not None and coding.strip().lower() not in _IDENTITY
            # the size on the wire is exact: the start line's constant part, then the rest
            side.head_size = head_len - (len(method) + 12 if method else 15)
            if body:
                side.on_body(body)
            side.begun = False
            side.done(side)
            # exact size: nothing to settle, but stray bytes after it (a CRLF) are its own
            side.fed = side.accounted = 0
            at = end
            if at == len(data) or self._done or side.mode != PARSE:
                break
            if side.direction == SERVER and self._bodyless:
                break  # a HEAD is waiting: its answer's end is found by the blank line
        return data[at:] if at else data

    def _slow(self, side: Side, data: bytes) -> None:
        """Sync scanning, held client bytes and HEAD-aware server feeding."""
        while data and not self._done:
            if side.mode == SYNC:
                data = self._sync(side, data)
            elif side.mode == HELD:
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
                    _reconcile(side)
                    side.new_parser()
                data = rest + data
            else:
                data = self._parse(side, data)

    def _sync(self, side: Side, data: bytes) -> bytes:
        """Skip to the next start line; return the bytes from it on (b"" while searching).

        `sync_buf` holds only the current partial line (bounded by max_header_bytes)."""
        buf = side.sync_buf
        held = len(buf)
        if not held:
            side.sync_ts = side.ts
        buf += data
        client = side.direction == CLIENT
        if side.fresh:  # the very first bytes: a clean start needs no full line
            verdict = (sniff_request if client else sniff_response)(bytes(buf[:_SNIFF]))
            if verdict == MAYBE and len(buf) < _SNIFF:
                return b""
            side.fresh = False
            if verdict == YES:
                return self._synced(side, 0, held)
        # Rescan only what can hold a new match: a request line ends with CRLF, so it needs a
        # newline in the new bytes; a status line prefix is 13 bytes long.
        if client:
            found = REQUEST_LINE.search(buf) if b"\n" in data else None
        else:
            found = STATUS_LINE.search(buf, max(0, held - 12))
        if found is not None:
            return self._synced(side, found.start(), held)
        dropped = 0
        newline = buf.rfind(b"\n", held)
        if newline >= 0:  # earlier lines cannot start a message any more
            dropped = newline + 1
            del buf[:dropped]
            side.sync_ts = side.ts
        if len(buf) > self._limits.max_header_bytes:
            dropped += len(buf)
            buf.clear()
        side.skipped += dropped
        self._check_sync(side)
        return b""

    def _synced(self, side: Side, start: int, held: int) -> bytes:
        buf = side.sync_buf
        rest = bytes(buf[start:])
        buf.clear()
        side.skipped += start
        side.new_parser()
        side.first_ts = side.sync_ts if start < held else None
        self._check_sync(side)
        return rest

    def _check_sync(self, side: Side) -> None:
        if side.skipped > _SYNC_GIVE_UP and not self._messages:
            raise DissectError("http: no message start found")

    def _fill(self, side: Side, size: int) -> None:
        """Stand in for lost body bytes so the parser keeps its framing."""
        side.filling = True
        try:
            while size > 0:
                step = min(size, len(_FILLER))
                self._parse(side, _FILLER[:step])
                size -= step
        finally:
            side.filling = False

    def _body_remaining(self, side: Side) -> int:
        """Bytes still due in a Content-Length body, -1 when the length is not known."""
        value = side.hdict.get("content-length")
        if value is None or not value.isdigit():
            return -1
        return max(0, int(value) - side.body_wire)

    def _abandon(self, side: Side) -> None:
        """End the message in progress as it is; the direction starts over."""
        if side.in_head:
            side.n_head = len(side.headers)
            side.read_start_line()
            self._headers_done(side)
        side.begun = False
        side.done(side)
        side.mode = SYNC
        side.sync_buf.clear()

    def _upgraded(self, side: Side, rest: bytes) -> bytes:
        if side.direction == CLIENT:
            side.mode = HELD
            side.held = b""
            return rest
        return b""  # the 101 completed the exchange and set _done

    # --- messages -----------------------------------------------------------------------

    def _headers_done(self, side: Side) -> None:
        hdict, size = header_dict(side.headers)
        side.hdict = hdict
        coding = hdict.get("content-encoding")
        side.coded = coding is not None and coding.strip().lower() not in _IDENTITY
        if size > self._limits.max_header_bytes:
            raise DissectError("http: header block over max_header_bytes")
        text = side.text
        side.head_size = size + (len(text[0]) if len(text) == 1 else sum(map(len, text)))
        if self._bodyless and side.direction == SERVER and self._pending:
            method = self._pending[0][1]
            if method in _BODYLESS:
                status = side.status
                side.cut = (method == "HEAD" and status >= 200) or 200 <= status < 300

    def _decoder_for(self, headers: dict[str, str]) -> BodyDecoder:
        return BodyDecoder(
            headers.get("content-encoding", ""), headers.get("content-type"), self._limits
        )

    def _payload(self, side: Side, start_line: int) -> Payload:
        headers = side.hdict
        trailer = 0
        if len(side.headers) > side.n_head:  # trailers after a chunked body
            headers, trailer = header_dict(side.headers[side.n_head :], dict(headers))
            trailer -= 2  # their blank line is counted in the last chunk's framing
        size = start_line + side.head_size + side.body_wire + side.chunk_overhead + trailer
        side.accounted += size
        version = side.version
        version = _VERSIONS.get(version) or "HTTP/" + version
        payload: Payload
        if side.body is not None:
            body = side.body.finish()
            payload = Payload(
                size,
                headers,
                body.body,
                body.body_size,
                body.truncated,
                body.encoding,
                version,
                None,
                None,
                body.info,
            )
        elif side.seen:
            text, encoding, truncated = render_chunks(
                side.raw, side.seen, headers.get("content-type"), self._limits.body_limit
            )
            payload = Payload(size, headers, text, side.seen, truncated, encoding, version)
        else:
            payload = Payload(size, headers, version=version)
        side.last_payload = payload
        return payload

    def _request_done(self, side: Side) -> None:
        parser = side.parser
        # Until the target starts the method may not be parsed yet (message cut short).
        method = ""
        text = side.text
        if text:
            raw = side.method
            method = _METHOD_NAMES.get(raw) or raw.decode("ascii", "replace")
        path = (text[0] if len(text) == 1 else b"".join(text)).decode("latin-1")
        payload = self._payload(side, len(method) + 12)
        if self._early is not None:  # the server answered before this request was complete
            resp_ts, status, resp_payload, resp_flags = self._early
            self._early = None
            self._messages += 1
            self._out.append(
                Exchange(
                    "http",
                    side.msg_ts,
                    resp_ts,
                    method,
                    path,
                    status,
                    summary_of(method, path, status),
                    payload,
                    resp_payload,
                    _join_flags(side.flags, (*resp_flags, "early-response")),
                )
            )
            return
        held = method == "CONNECT" or ("upgrade" in side.hdict and parser.should_upgrade())
        self._messages += 1
        self._pending.append((side.msg_ts, method, path, payload, side.flags, held))
        if method in _BODYLESS:
            self._bodyless += 1
        if len(self._pending) > self._limits.max_pending_messages:
            self._no_response(self._pop())

    def _response_done(self, side: Side) -> None:
        self._messages += 1
        code = side.status
        status = code if code else None  # None: the status line was cut short
        if 100 <= code < 200 and code != 101:
            if len(self._informational) < 16:
                self._informational.append(code)
            side.accounted += 15 + side.head_size
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
            client = self._sides[CLIENT]
            if upgrade is None and client.mode == PARSE and client.begun and not client.in_head:
                self._early = (side.msg_ts, status, payload, side.flags)
                return
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
                _join_flags(req_flags, side.flags),
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
        if client.mode != HELD:
            return
        held, client.held = client.held, b""
        if client.held_gap:
            client.held_gap = False
            client.mode = SYNC
            client.sync_buf.clear()
        else:
            client.new_parser()
        if held:
            self._slow(client, held)


def _keeps_alive(headers: dict[str, str], version: str) -> bool:
    """Whether the connection stays open after a message (as the parser decides it)."""
    connection = headers.get("connection")
    if connection is None:
        return version == "1.1"
    return connection.lower() == "keep-alive"  # any other value: the parser's own reading


def _join_flags(first: tuple[str, ...], second: tuple[str, ...]) -> list[str]:
    """Request and response flags together, each once, in first-seen order."""
    if not second:
        return list(first)
    if not first:
        return list(second)
    return list(dict.fromkeys(first + second))


def _reconcile(side: Side) -> None:
    """The parser is between messages: every byte fed so far belongs to a finished message.

    Sizes are rebuilt from the parsed pieces; whatever the rebuild missed (extra spaces, chunk
    extensions, a status line without reason, blank lines between messages) is given to the
    last message finished, which has not left the dissector yet, so totals are exact."""
    last = side.last_payload
    if last is not None:
        last.size += side.fed - side.accounted
        side.last_payload = None
    side.fed = side.accounted = 0
