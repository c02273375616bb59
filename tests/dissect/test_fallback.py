"""The story of a connection nobody understood: counted bytes and first-byte timestamps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.dissect.fallback import FallbackDissector
from pilotfish.model import CLIENT, SERVER


def test_tcp_connection_becomes_one_exchange_at_close() -> None:
    d = FallbackDissector(protocol="tcp")
    assert d.pending_since() is None
    assert d.feed(CLIENT, b"x" * 1234, 1.0) == []
    assert d.feed(SERVER, b"y" * 500, 1.5) == []
    assert d.feed(SERVER, b"y" * 67, 1.7) == []
    assert d.pending_since() == 1.0
    (ex,) = d.close(9.0)
    assert (ex.protocol, ex.request_ts, ex.response_ts) == ("tcp", 1.0, 1.5)
    assert ex.summary == "tcp 1234 B -> 567 B"
    assert ex.request is not None and ex.request.size == 1234
    assert ex.response is not None and ex.response.size == 567
    assert ex.response.info == {"segments": 2}
    assert (ex.method, ex.path, ex.status, ex.flags) == ("", "", None, [])


def test_udp_conversation_and_missing_answer() -> None:
    d = FallbackDissector(protocol="udp")
    d.feed(CLIENT, b"ping", 3.0)
    (ex,) = d.close(4.0)
    assert ex.protocol == "udp" and ex.summary == "udp 4 B -> 0 B"
    assert ex.response is None and ex.response_ts is None
    assert ex.flags == ["no-response"]


def test_gap_is_counted_and_flagged() -> None:
    d = FallbackDissector()
    d.feed(CLIENT, b"abc", 1.0)
    d.gap(CLIENT, 100, 1.1)
    d.feed(SERVER, b"ok", 1.2)
    (ex,) = d.close(2.0)
    assert ex.request is not None and ex.request.size == 103
    assert ex.flags == ["gap"]


def test_server_only_traffic_and_empty_flow() -> None:
    d = FallbackDissector()
    d.feed(SERVER, b"banner", 2.0)
    assert d.pending_since() == 2.0
    (ex,) = d.close(3.0)
    assert ex.request is None and ex.request_ts is None and ex.flags == ["no-request"]
    assert FallbackDissector().close(1.0) == []


@given(st.lists(st.tuples(st.sampled_from([CLIENT, SERVER]), st.binary(max_size=50))))
def test_sizes_always_add_up(chunks: list[tuple[int, bytes]]) -> None:
    d = FallbackDissector()
    for i, (direction, data) in enumerate(chunks):
        d.feed(direction, data, float(i))
    out = d.close(99.0)
    sent = sum(len(b) for dr, b in chunks if dr == CLIENT)
    got = sum(len(b) for dr, b in chunks if dr == SERVER)
    if not chunks:
        assert out == []
    else:
        (ex,) = out
        assert ex.summary == f"tcp {sent} B -> {got} B"
