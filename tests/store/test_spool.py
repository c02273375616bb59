"""The packet spool: bounded pcap segments, flow indexes, per-flow export read back by tshark."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.pcapfile import PcapFileSource
from pilotfish.model import Frame
from pilotfish.store.base import PacketSpool, StreamRef
from pilotfish.store.spool import PcapSpool
from tests.decode.frames import DST4, DST6, SRC4, SRC6, ethernet, ipv4, ipv6, sll2, tcp, udp

T0 = 1_767_225_600.0
ETH, SLL2 = 1, 276


def tcp_frame(ts: float, sport: int, reply: bool = False, body: bytes = b"x") -> Frame:
    """A frame of the flow 10.0.0.1:sport <-> 10.0.0.2:80 (reply = server to client)."""
    if reply:
        data = ethernet(ipv4(tcp(80, sport, body), src=DST4, dst=SRC4))
    else:
        data = ethernet(ipv4(tcp(sport, 80, body)))
    return (ts, ETH, data, len(data))


def dns_frame(ts: float, sport: int, reply: bool = False) -> Frame:
    if reply:
        data = ethernet(ipv6(udp(53, sport, b"a"), nxt=17, src=DST6, dst=SRC6), 0x86DD)
    else:
        data = ethernet(ipv6(udp(sport, 53, b"q"), nxt=17), 0x86DD)
    return (ts, ETH, data, len(data))


def ref(
    sport: int, first: float, last: float, transport: str = "tcp", v6: bool = False
) -> StreamRef:
    client, server = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    port = 53 if transport == "udp" else 80
    return StreamRef(f"s{sport}", client, sport, server, port, transport, first, last)


def read_back(data: bytes) -> list[Frame]:
    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(data)
        f.flush()
        src = PcapFileSource(f.name)
        frames = [fr for batch in src.batches() for fr in batch]
        src.close()
    return frames


def test_export_writes_exactly_the_wanted_flows_in_time_order(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path / "spool", 64 * 1024 * 1024, margin=0.0)
    frames = [
        tcp_frame(T0 + 0.0, 1111),
        tcp_frame(T0 + 0.1, 2222),
        tcp_frame(T0 + 0.2, 1111, reply=True),
        dns_frame(T0 + 0.3, 3333),
        tcp_frame(T0 + 0.4, 2222, reply=True),
        dns_frame(T0 + 0.5, 3333, reply=True),
        (T0 + 0.6, ETH, b"\x00" * 10, 10),  # garbage: spooled, never exported
    ]
    spool.write(frames)
    out = io.BytesIO()
    count = spool.export([ref(1111, T0, T0 + 1), ref(3333, T0, T0 + 1, "udp", v6=True)], out)
    assert count == 4
    got = read_back(out.getvalue())
    assert got == [frames[0], frames[2], frames[3], frames[5]]
    assert spool.counters()["exported"] == 4
    spool.close()


def test_port_reuse_is_told_apart_by_the_time_span(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path, 64 * 1024 * 1024, margin=0.0)
    spool.write([tcp_frame(T0, 1111), tcp_frame(T0 + 100, 1111), tcp_frame(T0 + 101, 1111, True)])
    out = io.BytesIO()
    assert spool.export([ref(1111, T0 + 99, T0 + 102)], out) == 2
    assert [f[0] for f in read_back(out.getvalue())] == [T0 + 100, T0 + 101]
    wide = PcapSpool(tmp_path, 64 * 1024 * 1024, margin=150.0)  # reopened: recovers the index
    assert wide.export([ref(1111, T0 + 99, T0 + 102)], io.BytesIO()) == 3


def test_nothing_to_export_is_an_empty_capture(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path, 64 * 1024 * 1024)
    out = io.BytesIO()
    assert spool.export([ref(9, T0, T0 + 1)], out) == 0
    assert len(out.getvalue()) == 24 and read_back(out.getvalue()) == []
    with pytest.raises(ValueError, match="transport"):
        spool.export([ref(9, T0, T0 + 1, transport="sctp")], out)


def test_size_is_bounded_and_oldest_segments_go_first(tmp_path: Path) -> None:
    limit = 256 * 1024
    spool = PcapSpool(tmp_path, limit, segment_bytes=32 * 1024, margin=0.0)
    body = b"y" * 900
    for i in range(2000):
        spool.write([tcp_frame(T0 + i, 1000 + i % 50, body=body)])
        assert spool.size_bytes() <= limit
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert on_disk <= limit
    assert spool.counters()["dropped_segments"] > 0
    assert spool.export([ref(1000, T0, T0 + 10)], io.BytesIO()) == 0  # evicted
    assert spool.export([ref(1000 + 1999 % 50, T0 + 1990, T0 + 2000)], io.BytesIO()) == 1
    spool.close()


def test_a_link_type_change_starts_a_segment(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path, 64 * 1024 * 1024, margin=0.0)
    inner = ipv4(tcp(1111, 80, b"z"))
    spool.write([tcp_frame(T0, 1111), (T0 + 1, SLL2, sll2(inner), len(inner) + 20)])
    spool.close()
    assert len(list(tmp_path.glob("*.pcap"))) == 2
    out = io.BytesIO()
    # one pcap has one link type: the first frame's wins, the other is skipped and counted
    assert spool.export([ref(1111, T0, T0 + 2)], out) == 1
    assert spool.counters()["export_skipped"] == 1


def test_a_crashed_segment_is_reindexed_on_open(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path, 64 * 1024 * 1024, margin=0.0)
    spool.write([tcp_frame(T0, 1111), tcp_frame(T0 + 1, 1111, True)])
    assert spool._writer is not None
    spool._writer.flush()  # the process dies here: no index, and a torn record at the end
    segment = next(tmp_path.glob("*.pcap"))
    with segment.open("ab") as f:
        f.write(b"\x01\x02\x03")
    again = PcapSpool(tmp_path, 64 * 1024 * 1024, margin=0.0)
    assert again.export([ref(1111, T0, T0 + 1)], io.BytesIO()) == 2
    again.write([tcp_frame(T0 + 2, 1111)])  # new frames go to a new segment
    again.close()
    assert len(list(tmp_path.glob("*.pcap"))) == 2
    assert again.export([ref(1111, T0, T0 + 2)], io.BytesIO()) == 3


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_reads_the_export(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path / "spool", 64 * 1024 * 1024, margin=0.0)
    frames = []
    for i in range(30):
        frames.append(tcp_frame(T0 + i, 5000 + i % 3))
        frames.append(tcp_frame(T0 + i + 0.5, 5000 + i % 3, reply=True))
    spool.write(frames)
    target = tmp_path / "out.pcap"
    with target.open("wb") as out:
        count = spool.export([ref(5000, T0, T0 + 40), ref(5002, T0, T0 + 40)], out)
    assert count == 40
    result = subprocess.run(
        [
            "tshark",
            "-r",
            str(target),
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [tuple(line.split("\t")) for line in result.stdout.splitlines()]
    assert len(rows) == 40
    assert set(rows) == {
        ("10.0.0.1", "5000", "10.0.0.2", "80"),
        ("10.0.0.2", "80", "10.0.0.1", "5000"),
        ("10.0.0.1", "5002", "10.0.0.2", "80"),
        ("10.0.0.2", "80", "10.0.0.1", "5002"),
    }


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 1000)), min_size=1, max_size=60
    ),
    st.sets(st.integers(0, 3)),
    st.integers(0, 1000),
    st.integers(0, 1000),
)
def test_export_equals_a_plain_filter(
    plan: list[tuple[int, bool, int]], wanted: set[int], a: int, b: int
) -> None:
    lo, hi = min(a, b) / 10, max(a, b) / 10
    frames = [tcp_frame(T0 + t / 10, 7000 + flow, reply) for flow, reply, t in plan]
    with tempfile.TemporaryDirectory() as tmp:
        spool = PcapSpool(tmp, 1024 * 1024, segment_bytes=4096, margin=0.0)
        spool.write(frames)
        out = io.BytesIO()
        count = spool.export([ref(7000 + w, T0 + lo, T0 + hi) for w in wanted], out)
        spool.close()
    expected = [
        f
        for f, (flow, _, t) in zip(frames, plan, strict=True)
        if flow in wanted and T0 + lo <= T0 + t / 10 <= T0 + hi
    ]
    got = read_back(out.getvalue())
    assert count == len(expected)
    assert sorted(got, key=lambda f: f[0]) == got
    assert sorted(got) == sorted(expected)


def test_frames_a_pcap_cannot_hold_are_skipped_and_counted(tmp_path: Path) -> None:
    spool = PcapSpool(tmp_path, 64 * 1024 * 1024, margin=0.0)
    good = tcp_frame(T0, 1111)
    spool.write([(-1.0, *good[1:]), (float("nan"), *good[1:]), (2.0**33, *good[1:]), good])
    assert spool.counters()["rejected"] == 3 and spool.counters()["frames"] == 1
    assert spool.export([ref(1111, T0, T0)], io.BytesIO()) == 1


def test_it_is_a_packet_spool(tmp_path: Path) -> None:
    spool: PacketSpool = PcapSpool(tmp_path, 64 * 1024 * 1024)  # mypy checks the contract
    spool.write([tcp_frame(T0, 1111)])
    assert spool.size_bytes() > 24
    spool.close()


def test_readonly_spool_sees_the_writers_segments_and_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    reader = PcapSpool(directory, 64 * 1024 * 1024, margin=0.0, readonly=True)
    assert not directory.exists() and reader.size_bytes() == 0  # the writer creates it
    writer = PcapSpool(directory, 64 * 1024 * 1024, segment_bytes=4096, margin=0.0)
    closed = [tcp_frame(T0 + i / 100, 2000 + i % 3, body=b"y" * 200) for i in range(40)]
    writer.write(closed)
    current = [tcp_frame(T0 + 1, 1111), tcp_frame(T0 + 1.5, 1111, reply=True)]
    writer.write(current)
    writer.flush()  # the open segment has no index yet: the reader indexes it itself
    before = sorted(p.name for p in directory.iterdir())
    out = io.BytesIO()
    assert reader.export([ref(1111, T0 + 1, T0 + 2)], out) == 2
    assert [f[0] for f in read_back(out.getvalue())] == [T0 + 1, T0 + 1.5]
    out = io.BytesIO()
    assert reader.export([ref(2001, T0, T0 + 1)], out) == len(closed[1::3])
    assert sorted(p.name for p in directory.iterdir()) == before
    assert reader.size_bytes() == sum(p.stat().st_size for p in directory.iterdir())
    with pytest.raises(PermissionError):
        reader.write(current)
    for path in directory.glob("*.pcap"):  # the writer's eviction, seen by the reader
        path.unlink()
    assert reader.export([ref(1111, T0, T0 + 2)], io.BytesIO()) == 0
    writer.close()
    reader.close()
