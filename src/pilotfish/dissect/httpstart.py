"""Recognising the start of an HTTP/1 message: method table, start-line scanners, sniffing.

Shared by the HTTP/1 dissector (resynchronising after a gap or a mid-stream pickup) and the
registry (deciding whether a new connection speaks HTTP/1).  Pure functions over bytes.

The HTTP/2 connection preface (`PRI * HTTP/2.0`) is deliberately *not* HTTP/1: `PRI` is not in
the method table, so such connections are left to another dissector (or the fallback).
"""

from __future__ import annotations

import re
from typing import Final

YES: Final = 1
NO: Final = 0
MAYBE: Final = -1

METHODS: Final = (
    # RFC 9110 and PATCH
    *("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"),
    # WebDAV, CalDAV, versioning and friends that llhttp understands
    *("PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT"),
    *("MKACTIVITY", "CHECKOUT", "MERGE", "MKCALENDAR", "LINK", "UNLINK", "BIND", "REBIND"),
    *("UNBIND", "ACL", "SOURCE", "QUERY", "PURGE"),
    # UPnP / SSDP over TCP
    *("M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE"),
)

_METHOD_TOKENS: Final = tuple(m.encode() + b" " for m in METHODS)
_ALTERNATION: Final = b"|".join(re.escape(m.encode()) for m in METHODS)

REQUEST_LINE: Final = re.compile(rb"(?:" + _ALTERNATION + rb") [!-~]+ HTTP/1\.[01]\r\n")
"""A complete request line, anywhere (a body without a final CRLF may precede it)."""

STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] [1-9][0-9][0-9][ \r]")
"""The beginning of a status line, anywhere."""

_STATUS_PREFIX: Final = b"HTTP/1."


def sniff_request(data: bytes) -> int:
    """Does a client stream start with an HTTP/1 request?  YES, NO or MAYBE (need more bytes)."""
    if not data:
        return MAYBE
    for token in _METHOD_TOKENS:
        if data.startswith(token):
            line_end = data.find(b"\r\n")
            if line_end < 0:
                return YES if b" HTTP/2" not in data else NO
            return YES if data[line_end - 9 : line_end - 1] == b" HTTP/1." else NO
        if token.startswith(data):
            return MAYBE
    return NO


def sniff_response(data: bytes) -> int:
    """Does a server stream start with an HTTP/1 status line (a mid-stream pickup)?"""
    if not data:
        return MAYBE
    if data.startswith(_STATUS_PREFIX):
        return YES
    return MAYBE if _STATUS_PREFIX.startswith(data) else NO


def sniff(client: bytes, server: bytes) -> int:
    """Verdict for a connection from the first bytes of each direction."""
    verdicts = (sniff_request(client), sniff_response(server))
    if YES in verdicts:
        return YES
    return MAYBE if MAYBE in verdicts else NO
