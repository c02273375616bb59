"""The story of one HTTP/1 direction: httptools callbacks collect pieces, the owner assembles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.config import DissectLimits
from pilotfish.dissect.body import BodyDecoder
from pilotfish.dissect.http1side import PARSE, SYNC, Side
from pilotfish.model import CLIENT, SERVER

LIMITS = DissectLimits(body_limit=8)


class Owner:
    """Records what a Side reports."""

    def __init__(self) -> None:
        self.heads: list[list[tuple[bytes, bytes]]] = []
        self.done: list[tuple[list[bytes], bytes, int, float]] = []

    def headers_done(self, side: Side) -> None:
        side.hdict = {k.decode().lower(): v.decode() for k, v in side.headers}
        side.coded = "content-encoding" in side.hdict
        self.heads.append(list(side.headers))

    def message_done(self, side: Side) -> None:
        self.done.append((list(side.text), b"".join(side.raw), side.seen, side.msg_ts))

    def decoder(self, headers: dict[str, str]) -> BodyDecoder:
        return BodyDecoder(headers.get("content-encoding", ""), None, LIMITS)


def side_for(direction: int) -> tuple[Side, Owner]:
    owner = Owner()
    side = Side(direction, owner.message_done, owner.headers_done, owner.decoder, 8)
    return side, owner


def test_starts_in_sync_and_parses_after_new_parser() -> None:
    side, owner = side_for(CLIENT)
    assert side.mode == SYNC and side.parser is None
    side.new_parser()
    assert side.mode == PARSE
    side.ts = 4.0
    side.parser.feed_data(b"POST /p HTTP/1.1\r\nA: 1\r\nContent-Length: 12\r\n\r\nhello world!")
    assert owner.heads == [[(b"A", b"1"), (b"Content-Length", b"12")]]
    # the identity body is kept up to body_limit, but every byte is counted
    assert owner.done == [([b"/p"], b"hello world!", 12, 4.0)]
    assert not side.begun and side.body_wire == 12


def test_chunk_framing_is_measured() -> None:
    side, _ = side_for(SERVER)
    side.new_parser()
    side.parser.feed_data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n"
        + b"x" * 16
        + b"\r\n0\r\n\r\n"
    )
    assert side.body_wire == 19
    assert side.chunk_overhead == (1 + 4) + (2 + 4) + (1 + 4)


def test_held_start_timestamp_wins_once() -> None:
    side, owner = side_for(CLIENT)
    side.new_parser()
    side.first_ts, side.ts = 1.0, 2.0
    side.parser.feed_data(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert [d[3] for d in owner.done] == [1.0, 2.0]


@given(st.binary(max_size=100))
def test_callbacks_survive_any_body_bytes(body: bytes) -> None:
    side, owner = side_for(SERVER)
    side.new_parser()
    side.parser.feed_data(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    (_, kept, seen, _) = owner.done[0]
    assert seen == len(body) and body.startswith(kept[:8])
