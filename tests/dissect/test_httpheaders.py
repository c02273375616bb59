"""The story of a header block: byte pairs in, one dict of text and the wire size out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.dissect.httpheaders import header_dict


def reference(pairs: list[tuple[bytes, bytes]], into: dict[str, str]) -> dict[str, str]:
    """The rule spelled out plainly: lower-case latin-1 names, repeats joined."""
    out = dict(into)
    for name, value in pairs:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        out[key] = (
            text if key not in out else out[key] + ("\n" if key == "set-cookie" else ", ") + text
        )
    return out


def test_common_block_and_its_wire_size() -> None:
    pairs = [(b"Host", b"shop"), (b"Content-Type", b"text/plain")]
    assert header_dict(pairs) == (
        {"host": "shop", "content-type": "text/plain"},
        len(b"Host: shop\r\nContent-Type: text/plain\r\n\r\n"),
    )


def test_empty_block_is_just_the_blank_line() -> None:
    assert header_dict([]) == ({}, 2)
    merged = {"a": "1"}
    assert header_dict([], merged) == ({"a": "1"}, 2)


def test_any_spelling_of_a_name_gives_one_key() -> None:
    pairs = [(b"CONTENT-LENGTH", b"1"), (b"x-Custom", b"a"), (b"X-CUSTOM", b"b")]
    hdict, _ = header_dict(pairs)
    assert hdict == {"content-length": "1", "x-custom": "a, b"}


def test_set_cookie_repeats_join_by_newline_and_trailers_merge() -> None:
    hdict, _ = header_dict([(b"Set-Cookie", b"a=1, x"), (b"set-cookie", b"b=2")])
    assert hdict == {"set-cookie": "a=1, x\nb=2"}
    merged, size = header_dict([(b"Grpc-Status", b"0")], {"content-type": "x"})
    assert merged == {"content-type": "x", "grpc-status": "0"}
    assert size == len(b"Grpc-Status: 0\r\n\r\n")


def test_non_ascii_bytes_survive_as_latin1() -> None:
    hdict, _ = header_dict([(b"X-Name", "caf\u00e9".encode("latin-1"))])
    assert hdict["x-name"] == "caf\u00e9"


_NAMES = st.one_of(
    st.sampled_from([b"Host", b"HOST", b"host", b"ETag", b"Set-Cookie", b"Vary", b"vary"]),
    st.binary(min_size=1, max_size=10),
)


@given(
    st.lists(st.tuples(_NAMES, st.binary(max_size=20)), max_size=15),
    st.dictionaries(st.sampled_from(["host", "vary", "x"]), st.text(max_size=5), max_size=2),
)
def test_property_matches_the_plain_rule_and_counts_every_byte(
    pairs: list[tuple[bytes, bytes]], into: dict[str, str]
) -> None:
    wire = sum(len(n) + len(v) + 4 for n, v in pairs) + 2
    assert header_dict(pairs) == (reference(pairs, {}), wire)
    assert header_dict(pairs, dict(into)) == (reference(pairs, into), wire)
