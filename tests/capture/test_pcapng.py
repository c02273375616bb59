"""pcapng reading: sections of both byte orders, interfaces with their own link types and
clocks, every packet block kind, skipped blocks, damage at every byte, and files written by
editcap, tshark and mergecap compared with what tshark reports."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.base import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW
from pilotfish.capture.pcapfile import PcapFileSource, PcapWriter, detect_format
from pilotfish.capture.pcapng import MAX_BLOCK, CaptureDamage, PcapngParser
from pilotfish.model import Frame
from tests.capture.test_pcapfile import TSHARK_FIELDS, assert_matches_tshark, collect, read_ok

needs_tshark = pytest.mark.skipif(shutil.which("editcap") is None, reason="tshark not installed")


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def shb(order: str = "<", major: int = 1) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1))


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def idb(order: str, linktype: int, snaplen: int = 0, options: bytes = b"") -> bytes:
    end = struct.pack(order + "HH", 0, 0) if options else b""
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options + end)


def tsresol(order: str, value: int) -> bytes:
    return option(order, 9, bytes([value]))


def tsoffset(order: str, seconds: int) -> bytes:
    return option(order, 14, struct.pack(order + "q", seconds))


def epb(order: str, iface: int, ts: int, data: bytes, orig: int | None = None) -> bytes:
    wire = len(data) if orig is None else orig
    head = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), wire)
    return block(order, 6, head + data)


def opb(order: str, iface: int, ts: int, data: bytes, orig: int) -> bytes:
    head = struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
    return block(order, 2, head + data)


def spb(order: str, orig: int, data: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", orig) + data)


def write(tmp_path: Path, content: bytes, name: str = "f.pcapng") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


US = 1_700_000_000_000_000  # 1.7e9 s in microseconds


# --- the normal cases ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_one_section(tmp_path: Path, order: str) -> None:
    path = write(
        tmp_path,
        shb(order)
        + idb(order, LINKTYPE_ETHERNET, 65535)
        + epb(order, 0, US + 1, b"a" * 61, 70)
        + epb(order, 0, US + 2_500_000, b"")
        + epb(order, 0, US + 3, b"bc"),
    )
    assert detect_format(path) == "pcapng"
    frames = read_ok(path)
    assert frames == [
        (1_700_000_000.000001, LINKTYPE_ETHERNET, b"a" * 61, 70),
        (1_700_000_002.5, LINKTYPE_ETHERNET, b"", 0),
        (1_700_000_000.000003, LINKTYPE_ETHERNET, b"bc", 2),
    ]
    source = PcapFileSource(path)
    list(source.batches())
    stats = source.stats()
    source.close()
    assert (stats.received, stats.bytes) == (3, 63)
    assert stats.extra["format"] == "pcapng"
    assert (stats.extra["sections"], stats.extra["interfaces"]) == (1, 1)
    assert stats.extra["skipped_blocks"] == 0


def test_sections_with_different_byte_orders_have_their_own_interfaces(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        shb("<")
        + idb("<", LINKTYPE_ETHERNET)
        + idb("<", LINKTYPE_LINUX_SLL2)
        + epb("<", 1, US, b"first")
        + shb(">")
        + idb(">", LINKTYPE_RAW, options=tsresol(">", 9))
        + epb(">", 0, 1_700_000_000_123_456_789, b"second")
        + epb(">", 1, US, b"gone: section two has one interface"),
    )
    source = PcapFileSource(path, chunk_size=10)
    frames = [f for batch in source.batches() for f in batch]
    stats = source.stats()
    source.close()
    assert [(f[1], f[2]) for f in frames] == [
        (LINKTYPE_LINUX_SLL2, b"first"),
        (LINKTYPE_RAW, b"second"),
    ]
    assert frames[1][0] == pytest.approx(1_700_000_000.123456789, abs=1e-7)
    assert (stats.extra["sections"], stats.extra["interfaces"]) == (2, 3)
    assert stats.extra["bad_interface"] == 1


def test_interfaces_with_their_own_link_types_and_clocks(tmp_path: Path) -> None:
    o = "<"
    path = write(
        tmp_path,
        shb(o)
        + idb(o, LINKTYPE_ETHERNET)  # default: microseconds
        + idb(o, LINKTYPE_RAW, options=tsresol(o, 9))  # nanoseconds
        + idb(o, LINKTYPE_LINUX_SLL2, options=tsresol(o, 0x8A) + tsoffset(o, 1_000))  # 2^-10 s
        + idb(o, LINKTYPE_ETHERNET, options=tsresol(o, 3) + tsoffset(o, -5))  # ms, offset back
        + epb(o, 0, 1_500_000, b"0")
        + epb(o, 1, 2_000_000_001, b"1")
        + epb(o, 2, 3 * 1024 + 512, b"2")
        + epb(o, 3, 10_250, b"3"),
    )
    frames = read_ok(path)
    assert [f[1] for f in frames] == [1, LINKTYPE_RAW, LINKTYPE_LINUX_SLL2, 1]
    assert frames[0][0] == 1.5
    assert frames[1][0] == pytest.approx(2.000000001, abs=1e-12)
    assert frames[2][0] == 1_003.5
    assert frames[3][0] == 5.25


def test_simple_packet_blocks_use_the_first_interface(tmp_path: Path) -> None:
    o = ">"
    path = write(
        tmp_path,
        shb(o)
        + idb(o, LINKTYPE_RAW, snaplen=64)
        + idb(o, LINKTYPE_ETHERNET)
        + spb(o, 100, b"s" * 100)  # cut to the snaplen; no timestamp yet
        + epb(o, 1, 7_000_000, b"e")
        + spb(o, 10, b"t" * 10)  # inherits the previous packet's time
        + spb(o, 1500, b"u" * 20),  # captured length is bounded by the block too
    )
    assert read_ok(path) == [
        (0.0, LINKTYPE_RAW, b"s" * 64, 100),
        (7.0, LINKTYPE_ETHERNET, b"e", 1),
        (7.0, LINKTYPE_RAW, b"t" * 10, 10),
        (7.0, LINKTYPE_RAW, b"u" * 20, 1500),
    ]


def test_obsolete_packet_blocks(tmp_path: Path) -> None:
    o = "<"
    path = write(
        tmp_path,
        shb(o) + idb(o, LINKTYPE_ETHERNET, options=tsresol(o, 9)) + opb(o, 0, 3 * 10**9, b"o", 99),
    )
    assert read_ok(path) == [(3.0, LINKTYPE_ETHERNET, b"o", 99)]


def test_unknown_and_ignored_blocks_are_skipped_and_counted(tmp_path: Path) -> None:
    o = "<"
    path = write(
        tmp_path,
        shb(o)
        + block(o, 4, b"\0\0\0\0")  # name resolution
        + idb(o, LINKTYPE_ETHERNET)
        + block(o, 5, b"\0" * 12)  # interface statistics
        + epb(o, 0, 1, b"x")
        + block(o, 0x0BAD, b"custom")
        + block(o, 0x12345678, b"")
        + epb(o, 0, 2, b"y"),
    )
    source = PcapFileSource(path)
    frames = [f for batch in source.batches() for f in batch]
    assert [f[2] for f in frames] == [b"x", b"y"]
    assert source.stats().extra["skipped_blocks"] == 4
    source.close()


def test_malformed_options_are_ignored_and_counted(tmp_path: Path) -> None:
    o = "<"
    overrun = struct.pack(o + "HH", 2, 200) + b"name"
    path = write(
        tmp_path,
        shb(o)
        + idb(o, 1, options=tsresol(o, 19))  # 10^-19 is out of range
        + idb(o, 1, options=option(o, 14, b"\1\2\3\4"))  # if_tsoffset must be 8 bytes
        + block(o, 1, struct.pack(o + "HHI", 1, 0, 0) + overrun)
        + epb(o, 0, 2_000_000, b"a")
        + epb(o, 1, 2_000_000, b"b")
        + epb(o, 2, 2_000_000, b"c"),
    )
    source = PcapFileSource(path)
    frames = [f for batch in source.batches() for f in batch]
    assert [f[0] for f in frames] == [2.0, 2.0, 2.0]  # microseconds, the default
    assert source.stats().extra["bad_options"] == 3
    source.close()


def test_gzip_pcapng(tmp_path: Path) -> None:
    o = "<"
    content = shb(o) + idb(o, 1) + b"".join(epb(o, 0, i, bytes([i])) for i in range(100))
    path = write(tmp_path, gzip.compress(content), "f.pcapng.gz")
    assert detect_format(path) == "pcapng"
    assert [f[2] for f in read_ok(path, chunk_size=33)] == [bytes([i]) for i in range(100)]


def test_header_only_pcapng_is_an_empty_capture(tmp_path: Path) -> None:
    assert read_ok(write(tmp_path, shb() + idb("<", 1))) == []


# --- damage ----------------------------------------------------------------------------------

GOOD = shb("<") + idb("<", LINKTYPE_ETHERNET) + epb("<", 0, 1, b"ok")


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (struct.pack("<II", 6, 14) + b"\0" * 8, "bad block length 14"),
        (struct.pack("<II", 6, 8) + b"\0" * 8, "bad block length 8"),
        (struct.pack("<II", 6, MAX_BLOCK + 4) + b"\0" * 8, "bad block length"),
        (block("<", 6, b"\0" * 20)[:-4] + struct.pack("<I", 99), "trailing length mismatch"),
        (block("<", 6, b"\0" * 12), "packet block too short"),
        (block("<", 6, struct.pack("<IIIII", 0, 0, 0, 50, 50) + b"\0" * 8), "overruns its block"),
        (block("<", 3, b""), "simple packet block too short"),
        (block("<", 1, b"\0\0\0\0"), "interface block too short"),
        (shb("<", major=2), "unsupported pcapng version 2.0"),
        (block("<", 0x0A0D0D0A, b"\0" * 16), "bad byte-order magic"),
        (block("<", 0x0A0D0D0A, struct.pack("<I", 0x1A2B3C4D)), "section header too short"),
    ],
)
def test_damaged_blocks_raise_after_the_good_frames(
    tmp_path: Path, tail: bytes, message: str
) -> None:
    path = write(tmp_path, GOOD + tail + epb("<", 0, 2, b"never"))
    frames, error = collect(path)
    assert [f[2] for f in frames] == [b"ok"]
    assert error is not None
    assert message in str(error)
    assert str(path) in str(error) and f"at byte {len(GOOD)}" in str(error)


def test_a_stream_must_start_with_a_section_header() -> None:
    with pytest.raises(CaptureDamage, match="before any section header"):
        PcapngParser().parse(idb("<", 1), 0, [], 10)


def test_truncation_at_every_byte_yields_the_complete_prefix(tmp_path: Path) -> None:
    o = ">"
    blocks = [shb(o), idb(o, 1), epb(o, 0, 5, b"abc"), block(o, 5, b"\0" * 8), spb(o, 3, b"xyz")]
    blocks += [shb("<"), idb("<", LINKTYPE_RAW), epb("<", 0, 9, b"12345")]
    whole = b"".join(blocks)
    ends, pos = [], 0
    for b in blocks:
        pos += len(b)
        ends.append(pos)
    packets = {ends[2]: b"abc", ends[4]: b"xyz", ends[7]: b"12345"}
    path = tmp_path / "cut.pcapng"
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])
        frames, error = collect(path, chunk_size=8)
        assert [f[2] for f in frames] == [data for end, data in packets.items() if end <= cut]
        assert (error is None) == (cut == 0 or cut in ends), cut


# --- properties ------------------------------------------------------------------------------

_sections = st.lists(
    st.tuples(
        st.sampled_from("<>"),
        st.lists(st.tuples(st.integers(0, 300), st.sampled_from([6, 9, 0x80 | 10])), min_size=1),
        st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2**64 - 1), st.binary(max_size=30))),
    ),
    min_size=1,
    max_size=4,
)


@given(sections=_sections, chunk=st.integers(1, 200), batch=st.integers(1, 5))
def test_built_files_read_back_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    sections: list[tuple[str, list[tuple[int, int]], list[tuple[int, int, bytes]]]],
    chunk: int,
    batch: int,
) -> None:
    content = b""
    want: list[Frame] = []
    for order, interfaces, packets in sections:
        content += shb(order)
        for linktype, resol in interfaces:
            content += idb(order, linktype, options=tsresol(order, resol))
        for iface, ts, data in packets:
            content += epb(order, iface, ts, data)
            if iface < len(interfaces):
                linktype, resol = interfaces[iface]
                units = 2 ** (resol & 0x7F) if resol & 0x80 else 10**resol
                want.append((ts / units, linktype, data, len(data)))
    path = tmp_path_factory.mktemp("ng") / "f.pcapng"
    path.write_bytes(content)
    assert read_ok(path, chunk_size=chunk, batch_size=batch) == want


@given(junk=st.binary(max_size=400))
def test_random_blocks_never_crash_or_hang(
    tmp_path_factory: pytest.TempPathFactory, junk: bytes
) -> None:
    path = tmp_path_factory.mktemp("junk") / "f.pcapng"
    path.write_bytes(shb(">") + idb(">", 1) + junk)
    frames, _error = collect(path, chunk_size=64)
    assert sum(len(f[2]) for f in frames) <= len(junk)


# --- files written by real tools ---------------------------------------------------------------


def _classic(path: Path, linktype: int, count: int, nano: bool, start: float) -> list[Frame]:
    frames = [(start + i * 0.0137, linktype, bytes([i]) * (40 + i), 44 + i) for i in range(count)]
    with PcapWriter(path, linktype, nanosecond=nano) as writer:
        writer.write_frames(frames)
    return frames


def _run(*argv: str) -> None:
    subprocess.run(list(argv), capture_output=True, timeout=60, check=True)


@needs_tshark
@pytest.mark.parametrize("nano", [False, True])
def test_editcap_and_tshark_pcapng_match_the_source(tmp_path: Path, nano: bool) -> None:
    original = _classic(tmp_path / "in.pcap", LINKTYPE_ETHERNET, 25, nano, 1_700_000_000.000001)
    _run("editcap", "-F", "pcapng", str(tmp_path / "in.pcap"), str(tmp_path / "e.pcapng"))
    _run(
        "tshark", "-r", str(tmp_path / "in.pcap"), "-F", "pcapng", "-w", str(tmp_path / "t.pcapng")
    )
    for name in ("e.pcapng", "t.pcapng"):
        path = tmp_path / name
        assert detect_format(path) == "pcapng"
        frames = read_ok(path)
        assert [f[1:] for f in frames] == [f[1:] for f in original]
        assert_matches_tshark(path, frames)


@needs_tshark
def test_mergecap_interfaces_keep_their_link_types(tmp_path: Path) -> None:
    eth = _classic(tmp_path / "eth.pcap", LINKTYPE_ETHERNET, 10, False, 1_700_000_000.0)
    raw = _classic(tmp_path / "raw.pcap", LINKTYPE_RAW, 10, True, 1_700_000_000.005)
    merged = tmp_path / "m.pcapng"
    _run(
        "mergecap",
        "-F",
        "pcapng",
        "-w",
        str(merged),
        str(tmp_path / "eth.pcap"),
        str(tmp_path / "raw.pcap"),
    )
    frames = read_ok(merged)
    assert sorted(f[1:] for f in frames) == sorted(f[1:] for f in eth + raw)
    assert [f[0] for f in frames] == sorted(f[0] for f in frames)  # merged in time order
    assert_matches_tshark(merged, frames)
    source = PcapFileSource(merged)
    list(source.batches())
    assert source.stats().extra["interfaces"] == 2
    source.close()


@needs_tshark
def test_hand_built_clocks_and_block_kinds_agree_with_tshark(tmp_path: Path) -> None:
    o = "<"
    path = write(
        tmp_path,
        shb(o)
        + idb(o, LINKTYPE_ETHERNET)
        + idb(o, LINKTYPE_RAW, options=tsresol(o, 9))
        + idb(o, LINKTYPE_LINUX_SLL2, options=tsresol(o, 0x8A) + tsoffset(o, 1_000))
        + idb(o, LINKTYPE_ETHERNET, snaplen=16, options=tsresol(o, 3) + tsoffset(o, -5))
        + epb(o, 0, 1_700_000_000_500_000, b"0" * 20)
        + epb(o, 1, 2_000_000_001, b"1" * 20)
        + epb(o, 2, 3 * 1024 + 512, b"2" * 20, 60)
        + epb(o, 3, 10_250, b"3" * 16, 1514)
        + spb(o, 30, b"s" * 30)  # tshark shows no time for it; pilotfish carries the last
        + opb(o, 1, 5 * 10**9, b"o" * 20, 25),
    )
    frames = read_ok(path)
    result = subprocess.run(
        [*TSHARK_FIELDS, "-e", "frame.interface_id", "-r", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == len(frames) == 6
    for (epoch, length, caplen, _iface), (ts, _lt, data, orig) in zip(rows, frames, strict=True):
        assert (int(length), int(caplen)) == (orig, len(data))
        if epoch:
            assert abs(Decimal(epoch) - Decimal(ts)) < Decimal("5e-7")
    assert [f[1] for f in frames] == [1, LINKTYPE_RAW, LINKTYPE_LINUX_SLL2, 1, 1, LINKTYPE_RAW]
