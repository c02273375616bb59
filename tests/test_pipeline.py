"""The pipeline: stages wired in order, failing dissectors isolated, entries in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotfish.capture.pcapfile import PcapFileSource
from pilotfish.config import Settings
from pilotfish.dissect.base import DissectError
from pilotfish.dissect.registry import BUILTIN
from pilotfish.model import Entry, Exchange, Frame
from pilotfish.pipeline import AddressOnly, Pipeline, address_text
from tests.convo import TcpConversation, write_pcap

C, S = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def frames(path: Path) -> list[Frame]:
    src = PcapFileSource(path)
    src.open()
    out = [f for b in src.batches() for f in b]
    src.close()
    return out


def run(frames_: list[Frame], **kw: object) -> tuple[Pipeline, list[Entry]]:
    out: list[Entry] = []
    p = Pipeline(Settings(node="p"), out.append, **kw)  # type: ignore[arg-type]
    p.feed(frames_)
    p.finish()
    return p, out


def http_frames(port: int = 80, ts: float = 1_700_000_000.0) -> list[Frame]:
    c = TcpConversation(C, 40000 + port, S, port, ts).handshake()
    c.send(0, b"GET /x HTTP/1.1\r\nHost: s\r\n\r\n")
    c.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    return c.close().frames


def test_address_text_both_families() -> None:
    assert address_text(bytes([192, 0, 2, 1])) == "192.0.2.1"
    assert address_text(bytes(15) + b"\x01") == "::1"
    assert AddressOnly().endpoint("192.0.2.1", 5).ip == "192.0.2.1"


def test_feed_builds_entries_with_ids_streams_and_counters() -> None:
    p, out = run(http_frames())
    (e,) = out
    assert (e.id, e.stream, e.node, e.capture) == ("p-1", "p-f1", "p", "pcap")
    assert (e.method, e.path, e.status, e.elapsed_us) == ("GET", "/x", 200, 1000)
    assert (e.protocol, e.summary, e.tls, e.flags) == ("http", "GET /x -> 200", False, [])
    assert (e.src.port, e.dst.port) == (40080, 80) and e.timestamp == pytest.approx(1.7e9, abs=0.01)
    assert e.request is not None and e.response is not None and e.response.size == 38
    summary = p.summary()
    assert summary["frames"] == 8 and summary["entries"] == {"http": 1}
    assert summary["pairs"] == {"http": 1}
    _, later = run(http_frames(), first_seq=41)
    assert [x.id for x in later] == ["p-42"]


def test_once_sniffed_the_flow_talks_to_the_chosen_dissector() -> None:
    out: list[Entry] = []
    p = Pipeline(Settings(node="p"), out.append)
    frames_ = http_frames()
    p.feed(frames_[:-2])  # handshake, request and response; the flow is still open
    (flow,) = p.table.open_flows()
    assert type(flow.state.dissector).__name__ == "Http1Dissector"
    assert flow.state.sniffer is None
    p.feed(frames_[-2:])
    p.finish()
    assert [(e.protocol, e.status) for e in out] == [("http", 200)]


def test_a_dissector_replaced_while_sniffing_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow given up on during sniffing stays with the fallback (not the sniffer's choice)."""
    out: list[Entry] = []
    p = Pipeline(Settings(node="p"), out.append)
    real = p.registry.dissector_for

    def failing_choice(*args: int) -> object:
        sniffer = real(*args)
        failing = BUILTIN[0]._replace(factory=lambda _limits: _Raising(DissectError("x")))
        monkeypatch.setattr(sniffer, "_candidates", [(failing, True)])
        return sniffer

    monkeypatch.setattr(p.registry, "dissector_for", failing_choice)
    p.feed(http_frames())
    p.finish()
    (e,) = out
    assert e.protocol == "tcp" and e.flags.count("http-unparsed") == 1
    assert p.summary()["dissect_errors"] == {"http": 1}  # never handed back to the failure


class _Raising:
    protocol = "http"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        raise self.exc

    def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
        raise self.exc

    def close(self, ts: float) -> list[Exchange]:
        return []

    def pending_since(self) -> float | None:
        return None


@pytest.mark.parametrize(
    ("exc", "counter"),
    [(DissectError("garbage"), "dissect_errors"), (ValueError("bug"), "dissector_crashes")],
)
def test_a_failing_dissector_hands_the_flow_to_the_fallback(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, counter: str
) -> None:
    out: list[Entry] = []
    p = Pipeline(Settings(node="p"), out.append)
    monkeypatch.setattr(p.registry, "dissector_for", lambda *a: _Raising(exc))
    p.feed(http_frames())
    p.finish()
    (e,) = out
    assert e.protocol == "tcp" and "http-unparsed" in e.flags
    assert p.summary()[counter] == {"http": 1}


def test_entries_come_out_in_request_order_across_flows() -> None:
    late_start = http_frames(80, 1_700_000_000.5)
    early_start = http_frames(81, 1_700_000_000.0)
    _, out = run(sorted(late_start + early_start, key=lambda f: f[0]))
    assert [e.dst.port for e in out] == [81, 80]


def test_live_pipeline_never_holds_an_entry_longer_than_max_delay() -> None:
    out: list[Entry] = []
    p = Pipeline(Settings(node="p"), out.append, max_delay=1.0)
    c = TcpConversation(C, 40000, S, 80, 100.0).handshake()
    c.send(0, b"GET /slow HTTP/1.1\r\n\r\n")  # never answered: pending forever
    other = TcpConversation(C, 40001, S, 80, 100.5).handshake()
    other.send(0, b"GET /fast HTTP/1.1\r\n\r\n")
    other.send(1, b"HTTP/1.1 204 No Content\r\n\r\n")
    p.feed(sorted(c.frames + other.frames, key=lambda f: f[0]))
    p.advance(101.0)
    assert out == []  # /slow (started 100.004) still pending; /fast must wait behind it
    p.advance(102.0)
    assert [e.path for e in out] == ["/fast"]


def test_an_upgrade_hands_the_connection_over(tmp_path: Path) -> None:
    c = TcpConversation(C, 40000, S, 80).handshake()
    c.send(0, b"GET /ws HTTP/1.1\r\nHost: s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    c.send(
        1, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    c.send(0, b"\x81\x85\x00\x00\x00\x00hello")  # a websocket frame, not HTTP
    c.close()
    _, out = run(frames(write_pcap(tmp_path / "ws.pcap", c.frames)))
    assert (out[0].protocol, out[0].status, out[0].path) == ("http", 101, "/ws")
    assert all("http-unparsed" not in e.flags for e in out)
