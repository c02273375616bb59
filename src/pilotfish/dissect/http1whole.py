"""HTTP/1 messages that arrive whole: head and body in one piece of the stream.

Most requests and responses of an API fit in one segment: a start line, a few headers, a
Content-Length body.  For those the dissector does not need the incremental parser and its
callbacks (about twenty Python calls per transaction); `request` and `response` read such a
message with one pass of a compiled scanner (`_headscan.pyx`) and say where it ends.
Anything unusual gets `None` and goes to the incremental parser, which remains the reference
for what HTTP/1 is:

- the head is not complete, or longer than the limit; the body is not complete;
- chunked or any Transfer-Encoding, Upgrade, CONNECT, a 1xx, no Content-Length on a
  response that needs one (it would end at close), several or malformed Content-Length;
- any bare CR or LF, a folded header line, a header name that is not a token, control bytes
  in a value, a request target with spaces or control bytes, an unknown method or version.

A message is the tuple `Message`: (end offset in the data, method or b"", target or reason
phrase, status or 0, version "1.1"/"1.0", headers as the dissector keeps them, head length,
body).  The property tests hold both paths to the same exchanges for any message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pilotfish.dissect._headscan import scan_request, scan_response
from pilotfish.dissect.httpheaders import NAME_KEYS
from pilotfish.dissect.httpstart import METHODS

if TYPE_CHECKING:
    from pilotfish.dissect._headscan import Message

__all__ = ["request", "response"]

_METHODS: Final = frozenset(m.encode() for m in METHODS if m != "CONNECT")


def request(data: bytes, start: int, max_head: int) -> Message | None:
    """The whole request at `data[start:]`, or None (see the module docstring)."""
    return scan_request(data, start, max_head, NAME_KEYS, _METHODS)


def response(data: bytes, start: int, max_head: int) -> Message | None:
    """The whole final response at `data[start:]`, or None (see the module docstring)."""
    return scan_response(data, start, max_head, NAME_KEYS)
