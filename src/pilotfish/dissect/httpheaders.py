"""HTTP/1 header blocks: the (name, value) byte pairs a parser reported -> one dict.

Names become lower-case text, values latin-1 text (every byte kept); a repeated name joins its
values with ", " (Set-Cookie with a newline, as its values may contain commas).  The size
returned is the block's length on the wire as HTTP/1 writes it (": " and CRLF per line plus
the blank line).  Nothing is bounded here: the caller limits the header block's bytes before
asking.  Common names in their usual spellings are looked up in a constant table instead of
being decoded and lowered, which is most of the per-message cost of a header block.
"""

from __future__ import annotations

from typing import Final

_COMMON_NAMES: Final = (  # space-separated, a few per line
    "Accept Accept-Encoding Accept-Language Accept-Ranges Access-Control-Allow-Origin Age",
    "Authorization Cache-Control Connection Content-Encoding Content-Length Content-Type",
    "Cookie Date ETag Expires Host If-Modified-Since If-None-Match Keep-Alive Last-Modified",
    "Location Origin Pragma Referer Server Set-Cookie Traceparent Transfer-Encoding Upgrade",
    "User-Agent Vary Via X-Forwarded-For X-Forwarded-Proto X-Request-Id",
)
# Header names as sent in their usual spellings -> their dict key (spares a decode and a
# lower() per header; any other spelling takes the general path).  Never changes.
NAME_KEYS: Final = {
    spelling.encode(): name.lower()
    for line in _COMMON_NAMES
    for name in line.split()
    for spelling in (name, name.lower(), name.upper())
}


def header_dict(
    raw: list[tuple[bytes, bytes]], into: dict[str, str] | None = None
) -> tuple[dict[str, str], int]:
    """Lower-case names -> values (repeats joined), and the block's size on the wire.

    With `into`, the pairs are merged into that dict (trailers after a chunked body)."""
    size = 2  # the blank line
    if into is None:
        hdict: dict[str, str] = {}
        known = NAME_KEYS.get
        for name, value in raw:
            size += len(name) + len(value) + 4  # ": " and CRLF
            hdict[known(name) or name.decode("latin-1").lower()] = value.decode("latin-1")
        if len(hdict) == len(raw):  # no repeated names: the common case
            return hdict, size
        into, size = {}, 2
    for name, value in raw:
        size += len(name) + len(value) + 4
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = into.get(key)
        into[key] = text if old is None else old + ("\n" if key == "set-cookie" else ", ") + text
    return into, size
