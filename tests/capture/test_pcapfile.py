"""Classic pcap reading and writing: hand-built files in every variant, gzip, damage at every
byte, the writer read back by tshark and tcpdump, and captures taken by tcpdump itself."""

from __future__ import annotations

import gzip
import io
import shutil
import socket
import struct
import subprocess
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.base import LINKTYPE_ETHERNET, LINKTYPE_RAW, Source, SourceError
from pilotfish.capture.pcapfile import (
    MAX_RECORD,
    PcapFileSource,
    PcapFormatError,
    PcapWriter,
    detect_format,
)
from pilotfish.model import Frame

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump missing")

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D

# (seconds, fraction, data, original length)
Record = tuple[int, int, bytes, int]

RECORDS: list[Record] = [
    (1_700_000_000, 1, b"\x01" * 60, 60),
    (1_700_000_000, 999_999, b"\x02" * 14, 1514),
    (1_700_000_001, 0, b"", 0),
    (1_700_000_002, 500_000, bytes(range(256)) * 2, 512),
]


def classic(
    records: Sequence[Record],
    order: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    linktype: int = LINKTYPE_ETHERNET,
) -> bytes:
    """A classic pcap file written field by field."""
    out = struct.pack(
        order + "IHHiIII", MAGIC_NS if nano else MAGIC_US, 2, 4, 0, 0, snaplen, linktype
    )
    for sec, frac, data, orig in records:
        out += struct.pack(order + "IIII", sec, frac, len(data), orig) + data
    return out


def collect(path: Path, **kwargs: int) -> tuple[list[Frame], PcapFormatError | None]:
    """Every frame a source yields, and the error that ended it (if any)."""
    source = PcapFileSource(path, **kwargs)
    frames: list[Frame] = []
    try:
        source.open()
        for batch in source.batches():
            assert 0 < len(batch) <= source.batch_size
            frames.extend(batch)
    except PcapFormatError as exc:
        return frames, exc
    finally:
        source.close()
    return frames, None


def read_ok(path: Path, **kwargs: int) -> list[Frame]:
    frames, error = collect(path, **kwargs)
    assert error is None, error
    return frames


def expected(records: Sequence[Record], nano: bool = False, linktype: int = 1) -> list[Frame]:
    scale = 1e-9 if nano else 1e-6
    return [(sec + frac * scale, linktype, data, orig) for sec, frac, data, orig in records]


TSHARK_FIELDS = ["tshark", "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len"]
TSHARK_FIELDS += ["-e", "frame.cap_len"]


def tshark_fields(path: Path) -> list[tuple[Decimal, int, int]]:
    result = subprocess.run(
        [*TSHARK_FIELDS, "-r", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = []
    for line in result.stdout.splitlines():
        epoch, length, caplen = line.split("\t")
        rows.append((Decimal(epoch), int(length), int(caplen)))
    return rows


def assert_matches_tshark(path: Path, frames: list[Frame]) -> None:
    rows = tshark_fields(path)
    assert len(rows) == len(frames)
    for (epoch, length, caplen), (ts, _lt, data, orig) in zip(rows, frames, strict=True):
        assert abs(Decimal(ts) - epoch) < Decimal("5e-7")
        assert (length, caplen) == (orig, len(data))


# --- reading: the variants --------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_reads_both_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(classic(RECORDS, order=order, nano=nano, linktype=LINKTYPE_RAW))
    assert detect_format(path) == "pcap"
    assert read_ok(path) == expected(RECORDS, nano=nano, linktype=LINKTYPE_RAW)


def test_source_keeps_the_contract_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(classic(RECORDS))
    source = PcapFileSource(path, batch_size=3)
    assert isinstance(source, Source)
    assert source.name == "pcap"
    source.open()
    sizes = [len(batch) for batch in source.batches()]
    stats = source.stats()
    source.close()
    source.close()  # closing twice is harmless
    assert sizes == [3, 1]
    assert stats.backend == "pcap"
    assert stats.received == 4
    assert stats.bytes == sum(len(r[2]) for r in RECORDS)
    assert stats.extra["format"] == "pcap"
    assert stats.extra["truncated_records"] == 0
    assert stats.extra["interfaces"] == 1


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 17, 100])
def test_tiny_chunks_give_the_same_frames(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(classic(RECORDS))
    assert read_ok(path, chunk_size=chunk_size, batch_size=2) == expected(RECORDS)


def test_batches_opens_on_demand(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(classic(RECORDS))
    source = PcapFileSource(path)
    assert [f for batch in source.batches() for f in batch] == expected(RECORDS)
    source.close()


def test_fcs_bits_of_the_link_type_field_are_masked(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(classic(RECORDS[:1], linktype=0x14000000 | LINKTYPE_ETHERNET))
    assert read_ok(path)[0][1] == LINKTYPE_ETHERNET


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap.gz"
    path.write_bytes(gzip.compress(classic(RECORDS * 50)))
    assert detect_format(path) == "pcap"
    assert read_ok(path, chunk_size=100) == expected(RECORDS * 50)
    source = PcapFileSource(path)
    for _batch in source.batches():
        pass
    assert source.stats().extra["compression"] == "gzip"
    source.close()


def test_memory_stays_bounded_by_chunk_not_file(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    records = [(1, i, b"x" * 1000, 1000) for i in range(3000)]  # ~3 MB
    path.write_bytes(classic(records))
    source = PcapFileSource(path, batch_size=64, chunk_size=64 * 1024)
    largest = 0
    count = 0
    for batch in source.batches():
        largest = max(largest, len(source._buf))
        count += len(batch)
    source.close()
    assert count == 3000
    assert largest < 64 * 1024 + 2 * 1016


# --- reading: empty, damaged and foreign files ------------------------------------------------


def test_empty_and_header_only_files_are_empty_captures(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    header_only = tmp_path / "header.pcap"
    header_only.write_bytes(classic([]))
    assert read_ok(empty) == []
    assert read_ok(header_only) == []


def test_truncated_header_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(classic([])[:20])
    frames, error = collect(path)
    assert frames == []
    assert error is not None
    assert str(path) in str(error)
    assert "truncated pcap header" in str(error)


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    with pytest.raises(SourceError, match=r"nope\.pcap: cannot open"):
        PcapFileSource(path).open()
    with pytest.raises(PcapFormatError, match="cannot open"):
        detect_format(path)
    with pytest.raises(PcapFormatError, match="cannot open"):
        PcapFileSource(tmp_path).open()  # a directory


def test_foreign_file_names_the_magic(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    frames, error = collect(path)
    assert frames == []
    assert error is not None
    assert "neither pcap nor pcapng" in str(error) and "47455420" in str(error)
    assert "\n" not in str(error)
    with pytest.raises(PcapFormatError, match="47455420"):
        detect_format(path)


def test_truncated_last_record_yields_everything_before_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(classic(RECORDS)[:-5])
    source = PcapFileSource(path, batch_size=2)
    got: list[Frame] = []
    with pytest.raises(PcapFormatError, match="file ends inside a record") as info:
        for batch in source.batches():
            got.extend(batch)
    assert got == expected(RECORDS[:3])
    assert str(path) in str(info.value)
    assert source.stats().extra["truncated_records"] == 1
    assert source.stats().received == 3
    source.close()


@pytest.mark.parametrize("caplen", [MAX_RECORD + 1, 0xFFFFFFFF])
def test_absurd_record_length_is_corruption(tmp_path: Path, caplen: int) -> None:
    good = classic(RECORDS[:2], snaplen=0)
    path = tmp_path / "bad.pcap"
    path.write_bytes(good + struct.pack("<IIII", 1, 2, caplen, caplen) + b"z" * 64)
    frames, error = collect(path)
    assert frames == expected(RECORDS[:2])
    assert error is not None and "exceeds the limit" in str(error)
    assert f"at byte {len(good)}" in str(error)


def test_record_longer_than_snaplen_is_tolerated_and_counted(tmp_path: Path) -> None:
    """libpcap reads such files (writers that put a wrong snaplen in the header exist)."""
    path = tmp_path / "snap.pcap"
    path.write_bytes(classic([(1, 0, b"a" * 100, 100)], snaplen=64))
    source = PcapFileSource(path)
    source.open()
    frames = [f for batch in source.batches() for f in batch]
    assert [f[2] for f in frames] == [b"a" * 100]
    assert source.stats().extra["over_snaplen"] == 1


def test_damaged_gzip_stream_yields_prefix_then_raises(tmp_path: Path) -> None:
    packed = gzip.compress(classic(RECORDS * 20))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[: len(packed) // 2])
    frames, error = collect(path, chunk_size=64)
    assert error is not None and str(path) in str(error)
    assert frames == expected(RECORDS * 20)[: len(frames)]


@given(cut=st.integers(min_value=0), flip=st.integers(min_value=0), bit=st.integers(0, 7))
def test_damaged_gzip_property(
    tmp_path_factory: pytest.TempPathFactory, cut: int, flip: int, bit: int
) -> None:
    packed = bytearray(gzip.compress(classic(RECORDS * 3)))
    packed[flip % len(packed)] ^= 1 << bit
    path = tmp_path_factory.mktemp("gz") / "f.pcap.gz"
    path.write_bytes(bytes(packed[: cut % (len(packed) + 1)]))
    frames, _error = collect(path, chunk_size=40)  # anything but PcapFormatError propagates
    assert len(frames) <= len(RECORDS) * 3


def test_truncation_at_every_byte_yields_the_complete_prefix(tmp_path: Path) -> None:
    whole = classic(RECORDS)
    ends = [24]
    for _sec, _frac, data, _orig in RECORDS:
        ends.append(ends[-1] + 16 + len(data))
    path = tmp_path / "cut.pcap"
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])
        frames, error = collect(path, chunk_size=16)
        complete = sum(1 for end in ends[1:] if end <= cut)
        assert frames == expected(RECORDS[:complete])
        assert (error is None) == (cut == 0 or cut in ends), cut


@given(cut=st.integers(min_value=0), records=st.lists(st.binary(max_size=40), max_size=6))
def test_truncation_property(
    tmp_path_factory: pytest.TempPathFactory, cut: int, records: list[bytes]
) -> None:
    recs = [(7, i, data, len(data)) for i, data in enumerate(records)]
    whole = classic(recs)
    cut %= len(whole) + 1
    path = tmp_path_factory.mktemp("cut") / "f.pcap"
    path.write_bytes(whole[:cut])
    frames, _error = collect(path, chunk_size=13)
    assert frames == expected(recs)[: len(frames)]
    assert len(frames) == sum(1 for i in range(len(recs)) if len(classic(recs[: i + 1])) <= cut)


@given(junk=st.binary(max_size=300), order=st.sampled_from("<>"))
def test_random_bytes_after_a_header_never_crash(
    tmp_path_factory: pytest.TempPathFactory, junk: bytes, order: str
) -> None:
    path = tmp_path_factory.mktemp("junk") / "f.pcap"
    path.write_bytes(classic([], order=order) + junk)
    frames, _error = collect(path, chunk_size=32)
    assert sum(16 + len(f[2]) for f in frames) <= len(junk)


# --- writing ----------------------------------------------------------------------------------


def test_writer_round_trip_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    frames = expected(RECORDS)
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        writer.write_frames(frames)
    assert writer.frames == 4
    assert path.read_bytes() == classic(RECORDS, snaplen=262144)
    assert read_ok(path) == frames


def test_writer_round_trip_nanoseconds_to_a_file_object(tmp_path: Path) -> None:
    sink = io.BytesIO()
    writer = PcapWriter(sink, LINKTYPE_RAW, nanosecond=True)
    writer.write(1_700_000_000.123456789, b"abc")
    writer.write(5.999999999999, b"", wirelen=40)  # rounds up into the next second
    writer.close()
    assert not sink.closed
    path = tmp_path / "w.pcap"
    path.write_bytes(sink.getvalue())
    assert path.read_bytes()[:4] == struct.pack("<I", MAGIC_NS)
    frames = read_ok(path)
    assert frames[0][1:] == (LINKTYPE_RAW, b"abc", 3)
    assert abs(frames[0][0] - 1_700_000_000.123456789) < 1e-6
    assert frames[1] == (6.0, LINKTYPE_RAW, b"", 40)


def test_writer_cuts_to_snaplen_and_keeps_wire_length(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    with PcapWriter(path, LINKTYPE_ETHERNET, snaplen=64) as writer:
        writer.write(1.5, b"q" * 100)
    assert read_ok(path) == [(1.5, LINKTYPE_ETHERNET, b"q" * 64, 100)]


def test_writer_batch_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    good = (1.25, LINKTYPE_ETHERNET, b"g" * 60, 60)
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        with pytest.raises(ValueError, match="link type 101"):
            writer.write_frames([good, (1.0, LINKTYPE_RAW, b"r", 1)])
        with pytest.raises(ValueError, match="does not fit"):
            writer.write_frames([good, (2.0**32, LINKTYPE_ETHERNET, b"x", 1)])
        writer.write_frames([good])
        assert writer.frames == 1
    assert read_ok(path) == [good]


def test_ready_records_go_in_order_between_frames(tmp_path: Path) -> None:
    def record(sec: int, data: bytes) -> bytes:
        return struct.pack("<IIII", sec, 0, len(data), len(data)) + data

    small = record(1, b"a" * 10) + record(2, b"b" * 20)
    big = b"".join(record(3, bytes([n % 256]) * 1500) for n in range(400))  # 600 KB: goes out alone
    path = tmp_path / "w.pcap"
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        writer.write_records(small, 2)
        writer.write(2.5, b"c" * 30)
        writer.write_records(memoryview(big), 400)
        writer.write_records(b"", 0)
        writer.write(4.0, b"d")
    assert writer.frames == 404
    got = read_ok(path)
    assert [f[2][:1] for f in got[:3]] == [b"a", b"b", b"c"]
    assert [f[0] for f in got] == [1.0, 2.0, 2.5] + [3.0] * 400 + [4.0]
    assert got[3:403] == [
        (3.0, LINKTYPE_ETHERNET, bytes([n % 256]) * 1500, 1500) for n in range(400)
    ]
    with pytest.raises(ValueError, match="closed"):
        writer.write_records(small, 2)


def test_writer_refuses_what_pcap_cannot_hold(tmp_path: Path) -> None:
    writer = PcapWriter(tmp_path / "w.pcap", LINKTYPE_ETHERNET)
    with pytest.raises(ValueError, match="link type 101"):
        writer.write_frames([(1.0, LINKTYPE_RAW, b"", 0)])
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(-1.0, b"")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(1.0, b"")
    with pytest.raises(ValueError, match="snaplen"):
        PcapWriter(io.BytesIO(), 1, snaplen=0)
    assert read_ok(tmp_path / "w.pcap") == []


@given(
    frames=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=0xFFFFFFFF),
            st.integers(min_value=0, max_value=999_999),
            st.binary(max_size=64),
        ),
        max_size=20,
    )
)
def test_writer_reader_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory, frames: list[tuple[int, int, bytes]]
) -> None:
    path = tmp_path_factory.mktemp("rt") / "f.pcap"
    want = [(sec + usec / 1_000_000, 1, data, len(data) + 4) for sec, usec, data in frames]
    with PcapWriter(path, 1) as writer:
        writer.write_frames(want)
    got = read_ok(path, batch_size=3, chunk_size=50)
    assert [f[1:] for f in got] == [f[1:] for f in want]
    assert all(abs(g[0] - w[0]) < 1e-6 for g, w in zip(got, want, strict=True))


@needs_tshark
@pytest.mark.parametrize("nano", [False, True])
def test_tshark_reads_the_writer_output_exactly(tmp_path: Path, nano: bool) -> None:
    path = tmp_path / "w.pcap"
    frames = [
        (1_700_000_000 + i * 0.25 + 0.000123, LINKTYPE_ETHERNET, bytes(60 + i), 60 + i + 4)
        for i in range(30)
    ]
    with PcapWriter(path, LINKTYPE_ETHERNET, nanosecond=nano) as writer:
        writer.write_frames(frames)
    assert_matches_tshark(path, frames)


@needs_tcpdump
def test_tcpdump_reads_the_writer_output_exactly(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    stamps = [1_700_000_000.5 + i * 0.001001 for i in range(25)]
    with PcapWriter(path, LINKTYPE_ETHERNET, nanosecond=True) as writer:
        for ts in stamps:
            writer.write(ts, bytes(60))
    result = subprocess.run(
        ["tcpdump", "-nn", "-tt", "--time-stamp-precision", "nano", "-r", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == len(stamps)
    for line, ts in zip(lines, stamps, strict=True):
        assert abs(Decimal(line.split()[0]) - Decimal(ts)) < Decimal("5e-7")


# --- files written by real tools --------------------------------------------------------------


def _tcpdump_lo(path: Path, extra: list[str]) -> None:
    """Capture 20 UDP datagrams sent to 127.0.0.1 by this test (bounded in count and time)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    bpf = ["udp", "and", "dst", "port", str(port)]
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-c", "20", "-U", "-w", str(path), *extra, *bpf],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(20):
                sender.sendto(b"pilotfish %d" % i + b"." * i, ("127.0.0.1", port))
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        receiver.close()


@needs_tshark
@needs_tcpdump
@pytest.mark.integration
@pytest.mark.parametrize("extra", [[], ["--time-stamp-precision", "nano"]])
def test_tcpdump_capture_matches_tshark(tmp_path: Path, extra: list[str]) -> None:
    path = tmp_path / "lo.pcap"
    _tcpdump_lo(path, extra)
    frames = read_ok(path)
    assert len(frames) == 20
    assert {f[1] for f in frames} == {LINKTYPE_ETHERNET}
    assert frames[3][2].endswith(b"pilotfish 3...")
    assert_matches_tshark(path, frames)
