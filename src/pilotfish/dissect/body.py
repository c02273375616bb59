"""Message bodies: undo Content-Encoding incrementally and render the result for an entry.

A `BodyDecoder` is fed the de-framed body bytes of one message (chunked framing already
removed by the protocol parser) and, at the end, renders a `RenderedBody`.

Bounds and what is dropped:
- decoded bytes kept: `limits.body_limit`; beyond it the body is cut and `truncated` is set,
  but `body_size` keeps counting the decoded size.
- decompression stops at `limits.max_decompressed` decoded bytes (bomb guard): the body is
  marked truncated and `info["decompression"] = "limit"`; the rest of the input is ignored.
- supported codings: gzip / x-gzip, deflate (zlib-wrapped or raw, detected from the first
  bytes), identity; chains like "gzip, deflate" are undone right to left.  Any other coding
  (br, zstd, compress, ...) is kept raw, base64, with `info["content_encoding"]` naming it and
  `info["decoded"] = False`.  Corrupt compressed data gives the raw bytes seen so far, base64,
  with `info["decompression"] = "error"`.  Nothing here raises on bad input.
- rendering: UTF-8 text when the content type is textual (text/*, json, xml, javascript,
  form-urlencoded, ...) or absent and the bytes are printable UTF-8; otherwise base64.
"""

from __future__ import annotations

import base64
import functools
import zlib
from typing import Any, Literal, NamedTuple

from pilotfish.config import DissectLimits


class RenderedBody(NamedTuple):
    """A body ready for `Payload`: text, encoding, decoded size, truncated, extra info."""

    body: str
    encoding: Literal["text", "base64"]
    body_size: int
    truncated: bool
    info: dict[str, Any] | None


EMPTY_BODY = RenderedBody("", "text", 0, False, None)

_TEXT_MARKERS = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv", "graphql")
_IDENTITY = frozenset(("", "identity"))
_GZIP = frozenset(("gzip", "x-gzip"))
_DEFLATE = "deflate"
# Control bytes that make an untyped body binary (tab, LF, CR, FF are fine in text).
_BINARY_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 12, 13))
_DELETE_NONE = bytes.maketrans(b"", b"")


@functools.lru_cache(maxsize=512)
def is_textual(content_type: str) -> bool:
    """Whether a Content-Type names something people read as text (cached: a handful of
    distinct values recur on every response; the cache is bounded)."""
    ct = content_type.lower()
    return ct.startswith("text/") or any(marker in ct for marker in _TEXT_MARKERS)


def render(data: bytes, content_type: str | None) -> tuple[str, Literal["text", "base64"]]:
    """(body, "text"|"base64") for decoded bytes, following the module's rendering rule."""
    if not data:
        return "", "text"
    textual = is_textual(content_type) if content_type else _looks_printable(data)
    if textual:
        text = _utf8_prefix(data)
        if text is not None:
            return text, "text"
    return base64.b64encode(data).decode("ascii"), "base64"


def render_identity(
    chunks: list[bytes], seen: int, content_type: str | None, body_limit: int
) -> RenderedBody:
    """The fast path for bodies without Content-Encoding: `chunks` hold at least the first
    `body_limit` bytes (or all of them) of `seen` bytes."""
    body, encoding, truncated = render_chunks(chunks, seen, content_type, body_limit)
    return RenderedBody(body, encoding, seen, truncated, None)


def render_chunks(
    chunks: list[bytes], seen: int, content_type: str | None, body_limit: int
) -> tuple[str, Literal["text", "base64"], bool]:
    """`render_identity` as a plain (body, encoding, truncated) tuple, for per-message use."""
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > body_limit:
        data = data[:body_limit]
    if content_type and is_textual(content_type):
        try:
            return data.decode("utf-8"), "text", seen > len(data)
        except UnicodeDecodeError:
            pass
    body, encoding = render(data, content_type)
    return body, encoding, seen > len(data)


class BodyDecoder:
    """Decodes one message body as it streams in; memory stays within the limits."""

    __slots__ = (
        "_chunks",
        "_content_type",
        "_decoded",
        "_error",
        "_kept",
        "_limits",
        "_overflow",
        "_stages",
        "_undecoded",
    )

    def __init__(self, content_encoding: str, content_type: str | None, limits: DissectLimits):
        self._limits = limits
        self._content_type = content_type
        self._chunks: list[bytes] = []
        self._kept = 0  # bytes in _chunks
        self._decoded = 0  # decoded bytes produced so far (the body_size)
        self._overflow = False  # max_decompressed reached
        self._error = False
        self._undecoded = ""  # the coding we could not undo, if any
        self._stages: list[Any] = []  # zlib decompressobj per coding, or None = sniff deflate
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        for coding in reversed(codings):
            if coding in _IDENTITY:
                continue
            if coding in _GZIP:
                self._stages.append(zlib.decompressobj(16 + zlib.MAX_WBITS))
            elif coding == _DEFLATE:
                self._stages.append(None)
            else:
                self._undecoded = content_encoding.strip()
                self._stages = []
                break

    def feed(self, data: bytes) -> None:
        """Add the next piece of the (transfer-decoded) body."""
        if self._overflow or self._error or not data:
            return
        if not self._stages:
            self._keep(data)
            return
        budget = self._limits.max_decompressed - self._decoded
        try:
            for i, stage in enumerate(self._stages):
                if stage is None:
                    stage = self._stages[i] = _deflate_for(data)
                data = stage.decompress(data, budget + 1)
                if not data:
                    return
        except zlib.error:
            self._error = True
            return
        if len(data) > budget:
            data = data[:budget]
            self._overflow = True
        self._keep(data)

    def finish(self) -> RenderedBody:
        """The rendered body; the decoder must not be used afterwards."""
        info: dict[str, Any] | None = None
        if self._stages and not self._overflow and not self._error:
            tail = b""
            try:
                for stage in self._stages:
                    if stage is not None:
                        tail = stage.decompress(tail) + stage.flush() if tail else stage.flush()
            except zlib.error:
                self._error = True
                tail = b""
            budget = self._limits.max_decompressed - self._decoded
            if len(tail) > budget:
                tail = tail[:budget]
                self._overflow = True
            self._keep(tail)
        data = b"".join(self._chunks)
        truncated = self._decoded > len(data) or self._overflow
        if self._undecoded:
            info = {"content_encoding": self._undecoded, "decoded": False}
            encoded = base64.b64encode(data).decode("ascii") if data else ""
            return RenderedBody(
                encoded, "base64" if data else "text", self._decoded, truncated, info
            )
        if self._error:
            info = {"decompression": "error"}
            encoded = base64.b64encode(data).decode("ascii") if data else ""
            return RenderedBody(
                encoded, "base64" if data else "text", self._decoded, truncated, info
            )
        if self._overflow:
            info = {"decompression": "limit"}
        body, encoding = render(data, self._content_type)
        return RenderedBody(body, encoding, self._decoded, truncated, info)

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        self._decoded += len(data)
        room = self._limits.body_limit - self._kept
        if room <= 0:
            return
        if len(data) > room:
            data = data[:room]
        self._chunks.append(data)
        self._kept += len(data)


def _deflate_for(first: bytes) -> Any:
    """A decompressor for "deflate": zlib-wrapped per the RFC, or raw as some servers send."""
    if len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0:
        return zlib.decompressobj(zlib.MAX_WBITS)
    return zlib.decompressobj(-zlib.MAX_WBITS)


def _looks_printable(data: bytes) -> bool:
    sample = data[:512]
    return len(sample.translate(_DELETE_NONE, _BINARY_CONTROLS)) == len(sample)


def _utf8_prefix(data: bytes) -> str | None:
    """Decode UTF-8, tolerating a multi-byte character cut at the very end (truncation)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")
        return None
