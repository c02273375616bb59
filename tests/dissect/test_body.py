"""The story of a body: content codings undone, bounded, and rendered as text or base64."""

from __future__ import annotations

import base64
import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.config import DissectLimits
from pilotfish.dissect.body import BodyDecoder, is_textual, render, render_chunks, render_identity

LIMITS = DissectLimits()


def decode(data: bytes, encoding: str = "", ctype: str | None = "text/plain", **kw: int):
    decoder = BodyDecoder(encoding, ctype, DissectLimits(**kw) if kw else LIMITS)
    decoder.feed(data)
    return decoder.finish()


def test_identity_text_body_is_kept_as_text() -> None:
    out = decode(b"hello world")
    assert out == ("hello world", "text", 11, False, None)


def test_json_is_textual_and_image_is_not() -> None:
    assert is_textual("application/json; charset=utf-8")
    assert is_textual("application/problem+xml")
    assert is_textual("application/x-www-form-urlencoded")
    assert not is_textual("image/png")
    assert not is_textual("application/octet-stream")


def test_binary_content_type_gives_base64() -> None:
    out = decode(b"\x89PNG\r\n", ctype="image/png")
    assert out.encoding == "base64"
    assert base64.b64decode(out.body) == b"\x89PNG\r\n"


def test_textual_type_with_invalid_utf8_gives_base64() -> None:
    out = decode(b"\xff\xfe abc", ctype="text/plain")
    assert out.encoding == "base64"
    assert base64.b64decode(out.body) == b"\xff\xfe abc"


def test_untyped_body_is_text_only_when_printable() -> None:
    assert render(b"plain words\n", None) == ("plain words\n", "text")
    assert render(b"\x00\x01\x02", None)[1] == "base64"


def test_gzip_is_undone() -> None:
    out = decode(gzip.compress(b'{"a": 1}'), "gzip", "application/json")
    assert out == ('{"a": 1}', "text", 8, False, None)


def test_zlib_wrapped_and_raw_deflate_are_both_undone() -> None:
    wrapped = zlib.compress(b"deflated text")
    raw = zlib.compressobj(wbits=-15)
    raw_bytes = raw.compress(b"deflated text") + raw.flush()
    assert decode(wrapped, "deflate").body == "deflated text"
    assert decode(raw_bytes, "deflate").body == "deflated text"


def test_chained_codings_are_undone_right_to_left() -> None:
    data = zlib.compress(gzip.compress(b"twice"))
    assert decode(data, "gzip, deflate").body == "twice"


def test_incremental_feeding_gives_the_same_result() -> None:
    data = gzip.compress(b"x" * 5000 + b"tail")
    decoder = BodyDecoder("gzip", "text/plain", LIMITS)
    for i in range(0, len(data), 7):
        decoder.feed(data[i : i + 7])
    assert decoder.finish().body == "x" * 5000 + "tail"


def test_brotli_is_not_available_so_raw_body_is_kept_and_named() -> None:
    out = decode(b"\x0b\x02\x80hello\x03", "br", "text/html")
    assert out.encoding == "base64"
    assert base64.b64decode(out.body) == b"\x0b\x02\x80hello\x03"
    assert out.info == {"content_encoding": "br", "decoded": False}


def test_body_limit_truncates_but_counts_the_whole_size() -> None:
    out = decode(b"a" * 100, body_limit=10)
    assert out.body == "a" * 10
    assert out.truncated
    assert out.body_size == 100


def test_truncation_inside_a_utf8_character_still_gives_text() -> None:
    out = decode("ééééé".encode(), body_limit=5)  # cuts the third é in half
    assert out.encoding == "text"
    assert out.body == "éé"
    assert out.truncated


def test_decompression_bomb_stops_at_max_decompressed() -> None:
    bomb = gzip.compress(bytes(10_000_000))
    out = decode(bomb, "gzip", "application/octet-stream", max_decompressed=100_000)
    assert out.truncated
    assert out.body_size == 100_000
    assert out.info == {"decompression": "limit"}
    assert len(base64.b64decode(out.body)) == LIMITS.body_limit


def test_corrupt_gzip_is_reported_not_raised() -> None:
    out = decode(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip")
    assert out.info == {"decompression": "error"}


def test_empty_body() -> None:
    assert decode(b"", "gzip") == ("", "text", 0, False, None)


@given(st.binary(max_size=300), st.sampled_from(["", "gzip", "deflate", "br", "gzip, br"]))
def test_any_bytes_with_any_coding_never_raise(data: bytes, coding: str) -> None:
    out = decode(data, coding, None, body_limit=64)
    assert out.encoding in ("text", "base64")
    assert len(out.body) <= 4 * 64 // 3 + 4 or out.encoding == "text"


@given(st.binary(max_size=2000), st.integers(1, 50))
def test_gzip_roundtrip_under_any_chunking(data: bytes, step: int) -> None:
    packed = gzip.compress(data)
    decoder = BodyDecoder("gzip", "application/octet-stream", LIMITS)
    for i in range(0, len(packed), step):
        decoder.feed(packed[i : i + step])
    out = decoder.finish()
    assert out.body_size == len(data)
    assert (base64.b64decode(out.body) if out.encoding == "base64" else out.body.encode()) == data


@given(
    st.lists(st.binary(max_size=40), min_size=1, max_size=4),
    st.sampled_from([None, "text/plain", "application/json", "image/png"]),
    st.integers(0, 100),
)
def test_render_chunks_agrees_with_render_identity(
    chunks: list[bytes], ctype: str | None, limit: int
) -> None:
    """The per-message tuple form gives exactly what the RenderedBody form gives."""
    seen = sum(map(len, chunks))
    full = render_identity(chunks, seen, ctype, limit)
    assert render_chunks(chunks, seen, ctype, limit) == (full.body, full.encoding, full.truncated)
    assert full.body_size == seen and full.info is None


def test_render_chunks_keeps_a_character_cut_by_the_limit_out() -> None:
    text = "h\u00e9llo".encode()  # the e-acute takes two bytes: a limit of 2 cuts it
    assert render_chunks([text], len(text), "text/plain", 2) == ("h", "text", True)
