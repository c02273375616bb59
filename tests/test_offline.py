"""The read job: a file through the pipeline, with filters, errors and the summary."""

from __future__ import annotations

from pathlib import Path

import dnslib
import pytest

from pilotfish.config import Settings
from pilotfish.model import Entry
from pilotfish.offline import read_file
from pilotfish.query import compile_query
from tests.convo import TcpConversation, udp_frame, write_pcap

C, S, D = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([10, 0, 0, 53])


def http_capture(path: Path) -> Path:
    a = TcpConversation(C, 40000, S, 80).handshake()
    a.send(0, b"GET /one HTTP/1.1\r\nHost: s\r\n\r\n")
    a.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", dt=0.004)
    a.send(0, b"GET /two HTTP/1.1\r\nHost: s\r\n\r\n")
    a.send(1, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", dt=0.002)
    a.close()
    b = TcpConversation(C, 40001, S, 8080, ts=1_700_000_000.0025).handshake()
    b.send(0, b"POST /api HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\n\r\nabc")
    b.send(1, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    b.close()
    query = dnslib.DNSRecord.question("example.com").pack()
    answer = dnslib.DNSRecord.parse(query).reply()
    answer.add_answer(*dnslib.RR.fromZone("example.com. 60 A 192.0.2.1"))
    frames = [
        udp_frame(1_700_000_000.0085, C, 5353, D, 53, query),
        udp_frame(1_700_000_000.0086, D, 53, C, 5353, answer.pack()),
    ]
    return write_pcap(path, a.frames + b.frames + frames)


def collect(path: Path, **kw: object) -> tuple[list[Entry], object]:
    out: list[Entry] = []
    result = read_file(path, Settings(node="t"), out.append, **kw)  # type: ignore[arg-type]
    return out, result


def test_every_exchange_in_request_timestamp_order(tmp_path: Path) -> None:
    entries, result = collect(http_capture(tmp_path / "h.pcap"))
    assert [(e.protocol, e.method, e.path, e.status) for e in entries] == [
        ("http", "GET", "/one", 200),
        ("http", "POST", "/api", 201),
        ("dns", "A", "example.com", "NOERROR"),
        ("http", "GET", "/two", 500),
    ]
    assert [e.timestamp for e in entries] == sorted(e.timestamp for e in entries)
    first = entries[0]
    assert first.elapsed_us == 4000
    assert first.src.ip == "10.0.0.1" and first.src.port == 40000
    assert first.dst.ip == "10.0.0.2" and first.dst.port == 80
    assert first.response is not None and first.response.body == "ok"
    assert first.id.startswith("t-") and first.stream.startswith("t-f")
    assert entries[0].stream == entries[3].stream != entries[1].stream
    assert result.error is None  # type: ignore[attr-defined]


def test_query_filter_and_bpf(tmp_path: Path) -> None:
    path = http_capture(tmp_path / "h.pcap")
    entries, result = collect(path, match=compile_query("http && status_code >= 500").match)
    assert [e.path for e in entries] == ["/two"]
    assert result.summary["emitted"] == 1  # type: ignore[attr-defined]
    entries, result = collect(path, bpf="tcp port 8080")
    assert [e.path for e in entries] == ["/api"]
    assert result.summary["capture_filter_rejected"] > 0  # type: ignore[attr-defined]


def test_bad_bpf_is_an_error_before_any_entry(tmp_path: Path) -> None:
    entries, result = collect(http_capture(tmp_path / "h.pcap"), bpf="tcp port")
    assert entries == []
    assert "invalid capture filter" in (result.error or "")  # type: ignore[attr-defined]


def test_truncated_file_keeps_what_came_before(tmp_path: Path) -> None:
    path = http_capture(tmp_path / "h.pcap")
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])
    entries, result = collect(cut)
    assert result.error and "cut.pcap" in result.error  # type: ignore[attr-defined]
    assert len(entries) >= 3


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "No such file"), (b"not a capture at all", "neither pcap nor pcapng")],
)
def test_unusable_input_is_one_error(tmp_path: Path, content: bytes | None, needle: str) -> None:
    path = tmp_path / "x.pcap"
    if content is not None:
        path.write_bytes(content)
    entries, result = collect(path)
    assert entries == []
    assert needle in (result.error or "") and str(path) in (result.error or "")  # type: ignore[attr-defined]
