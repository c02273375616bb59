"""`pilotfish read` on altered and damaged copies of the real HTTP recording.

Every copy goes through `pilotfish read --format jsonl` as a subprocess.  Whatever the
damage: no traceback, exit 0 (or 2 with one line on stderr naming the file for input that is
unusable or ends early), and stdout is JSON lines.  Beyond that:

- the same traffic framed differently (802.1Q / QinQ tags, Linux cooked, raw IP, pcapng,
  nanosecond pcap, gzip) gives the very same entries;
- segments reordered within a direction, or duplicated, give the same transactions with the
  same sizes and bodies;
- a lost segment marks only the entry it belonged to;
- a file cut short gives exactly the entries of its complete records, then exit 2;
- snaplen 96, overwritten bytes and garbage records are survived.
"""

from __future__ import annotations

import gzip
import random
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
)
from pilotfish.model import Frame
from tests.integration.scenario import (
    HTTP_PLAN,
    ROOT_ONLY,
    DnsCapture,
    HttpCapture,
    content_key,
    entries,
    expected,
    frames_of,
    parse_jsonl,
    read,
    txns,
    write_pcap,
)

pytestmark = [pytest.mark.integration, ROOT_ONLY]

_ETH = 14
_ETHERTYPE_IPV4 = b"\x08\x00"
_TCP_SYN = 0x02
_PCAP_HEADER = 24
_PCAP_RECORD = struct.Struct("<IIII")


@pytest.fixture(scope="module")
def original(http_capture: HttpCapture) -> list[dict[str, Any]]:
    return entries(http_capture.path, "-q")


@pytest.fixture(scope="module")
def frames(http_capture: HttpCapture) -> list[Frame]:
    return frames_of(http_capture.path)


def survive(path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Read a damaged file: no traceback, exit 0 or 2, JSON lines, a one-line error."""
    done = read(path, "-q", *args)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 2), done.stderr
    docs = parse_jsonl(done.stdout)
    if done.returncode == 2:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pilotfish: "), done.stderr
        assert str(path) in lines[0]
    else:
        assert done.stderr == ""
    return done.returncode, docs, done.stderr


# --- the same traffic, framed or stored differently --------------------------------------


def _tagged(tags: bytes) -> Callable[[Frame], Frame]:
    def rewrite(f: Frame) -> Frame:
        data = f[2]
        return (f[0], f[1], data[:12] + tags + data[12:], f[3] + len(tags))

    return rewrite


def _cooked(f: Frame) -> Frame:
    """Ethernet -> Linux cooked v1: packet type, ARPHRD_ETHER, address, protocol."""
    data = f[2]
    header = struct.pack("!HHH8s", 0, 1, 6, data[6:12] + bytes(2)) + data[12:14]
    return (f[0], LINKTYPE_LINUX_SLL, header + data[_ETH:], f[3] - _ETH + len(header))


def _raw_ip(f: Frame) -> Frame:
    return (f[0], LINKTYPE_RAW, f[2][_ETH:], f[3] - _ETH)


REFRAMINGS: dict[str, tuple[Callable[[Frame], Frame], int]] = {
    "vlan": (_tagged(struct.pack("!HH", 0x8100, 42)), LINKTYPE_ETHERNET),
    "qinq": (_tagged(struct.pack("!HHHH", 0x88A8, 7, 0x8100, 42)), LINKTYPE_ETHERNET),
    "linux-cooked": (_cooked, LINKTYPE_LINUX_SLL),
    "raw-ip": (_raw_ip, LINKTYPE_RAW),
}


@pytest.mark.parametrize("kind", sorted(REFRAMINGS))
def test_other_link_layers_give_the_same_entries(
    frames: list[Frame], original: list[dict[str, Any]], tmp_path: Path, kind: str
) -> None:
    rewrite, linktype = REFRAMINGS[kind]
    ip_frames = [f for f in frames if f[2][12:14] == _ETHERTYPE_IPV4]
    path = write_pcap(tmp_path / f"{kind}.pcap", [rewrite(f) for f in ip_frames], linktype)
    assert entries(path, "-q") == original


@pytest.mark.parametrize("kind", ["gzip", "pcapng", "nsecpcap"])
def test_other_file_formats_give_the_same_entries(
    http_capture: HttpCapture, original: list[dict[str, Any]], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"copy.{kind}"
    if kind == "gzip":
        path.write_bytes(gzip.compress(http_capture.path.read_bytes()))
    else:
        subprocess.run(["editcap", "-F", kind, str(http_capture.path), str(path)], check=True)
    assert entries(path, "-q") == original


def test_pcapng_with_two_interfaces_and_link_types(
    http_capture: HttpCapture,
    dns_capture: DnsCapture,
    original: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    merged = tmp_path / "merged.pcapng"
    argv = ["mergecap", "-F", "pcapng", "-w", str(merged)]
    subprocess.run([*argv, str(http_capture.path), str(dns_capture.cooked)], check=True)
    dns = entries(dns_capture.cooked, "-q")
    docs = entries(merged, "-q")
    assert sorted(map(content_key, docs)) == sorted(map(content_key, original + dns))
    assert [d["timestamp"] for d in docs] == sorted(d["timestamp"] for d in docs)
    summary = read(merged).stderr
    assert "capture.interfaces=2" in summary


# --- reordered, duplicated and lost segments -----------------------------------------------


def _direction(f: Frame) -> bytes | None:
    """Source address and port of an IPv4 TCP/UDP frame that is not a SYN, else None."""
    data = f[2]
    if data[12:14] != _ETHERTYPE_IPV4 or data[23] not in (6, 17):
        return None
    l4 = _ETH + (data[_ETH] & 0x0F) * 4
    if data[23] == 6 and data[l4 + 13] & _TCP_SYN:
        return None
    return data[26:30] + data[l4 : l4 + 2]


def reorder(frames: list[Frame], window: int, seed: int) -> list[Frame]:
    """Shuffle packets inside runs sent back to back in one direction, `window` at a time,
    keeping the capture timestamps in place: segments that overtook each other on the way.
    Nothing crosses a packet of the other direction, so no answer comes before its question.
    """
    rng = random.Random(seed)
    out = list(frames)
    start = 0
    while start < len(frames):
        key = _direction(frames[start])
        end = start + 1
        while end < len(frames) and end - start < window and key is not None:
            if _direction(frames[end]) != key:
                break
            end += 1
        moved = list(range(start, end))
        rng.shuffle(moved)
        for slot, src in zip(range(start, end), moved, strict=True):
            out[slot] = (frames[slot][0], *frames[src][1:])
        start = end
    return out


def same_exchanges(docs: list[dict[str, Any]], original: list[dict[str, Any]]) -> None:
    assert sorted(map(content_key, docs)) == sorted(map(content_key, original))


@pytest.mark.parametrize(("window", "seed"), [(3, 1), (6, 2), (12, 3)])
def test_reordered_segments_give_the_same_exchanges(
    frames: list[Frame],
    original: list[dict[str, Any]],
    tmp_path: Path,
    window: int,
    seed: int,
) -> None:
    shuffled = reorder(frames, window, seed)
    moved = sum(a[2] != b[2] and len(a[2]) > 1000 for a, b in zip(shuffled, frames, strict=True))
    assert moved > 10, "the big response's segments must be out of order"
    code, docs, _ = survive(write_pcap(tmp_path / "r.pcap", shuffled, LINKTYPE_ETHERNET))
    assert code == 0
    same_exchanges(docs, original)


def test_every_frame_twice_gives_the_same_entries(
    frames: list[Frame], original: list[dict[str, Any]], tmp_path: Path
) -> None:
    doubled = [f for frame in frames for f in (frame, frame)]
    assert entries(write_pcap(tmp_path / "d.pcap", doubled, LINKTYPE_ETHERNET), "-q") == original


def test_late_retransmissions_give_the_same_exchanges(
    frames: list[Frame], original: list[dict[str, Any]], tmp_path: Path
) -> None:
    rng = random.Random(7)
    out = list(frames)
    for i in sorted(rng.sample(range(len(frames)), len(frames) // 5), reverse=True):
        later = min(len(out), i + 1 + rng.randrange(4))
        out.insert(later, (out[later - 1][0], *frames[i][1:]))
    path = write_pcap(tmp_path / "late.pcap", out, LINKTYPE_ETHERNET)
    same_exchanges(entries(path, "-q"), original)


def _big_segments(frames: list[Frame]) -> list[int]:
    """Indexes of full-size segments from nginx: the /big response."""
    return [i for i, f in enumerate(frames) if len(f[2]) > 1400 and f[2][34:36] == b"\x00\x50"]


@pytest.mark.parametrize("which", ["middle", "first"])
def test_a_lost_segment_marks_only_its_entry(
    frames: list[Frame], original: list[dict[str, Any]], tmp_path: Path, which: str
) -> None:
    segments = _big_segments(frames)
    victim = segments[len(segments) // 2] if which == "middle" else segments[0]
    lost = len(frames[victim][2]) - 66  # Ethernet + IPv4 + TCP with timestamps
    path = write_pcap(tmp_path / "lost.pcap", frames[:victim] + frames[victim + 1 :], 1)
    code, docs, _ = survive(path)
    assert code == 0
    flagged = [d for d in docs if "gap" in d["flags"]]
    assert [d["path"] for d in flagged] == ["/big"]
    if which == "middle":  # the status line got through: a response with a hole
        assert flagged[0]["status"] == 200
        assert flagged[0]["response"]["body_size"] == 100 * 1024 - lost
    else:  # the status line was lost: the request stands alone
        assert flagged[0]["status"] is None and "no-response" in flagged[0]["flags"]
    same_exchanges(
        [d for d in docs if d["path"] != "/big"], [d for d in original if d["path"] != "/big"]
    )


def test_a_lost_request_in_a_keepalive_run_spares_its_neighbours(
    frames: list[Frame], original: list[dict[str, Any]], tmp_path: Path
) -> None:
    first_port = original[0]["src"]["port"]
    run = [d for d in original if d["src"]["port"] == first_port]
    assert [d["path"] for d in run] == ["/", "/api/v1/items", "/missing"]
    needle = b"GET /api/v1/items HTTP/1.1"
    victim = next(i for i, f in enumerate(frames) if needle in f[2])
    path = write_pcap(tmp_path / "lost-request.pcap", frames[:victim] + frames[victim + 1 :], 1)
    code, docs, _ = survive(path)
    assert code == 0
    untouched = [d for d in original if d["src"]["port"] != first_port]
    others = [d for d in docs if d["src"]["port"] != first_port]
    same_exchanges(others, untouched)
    mine = [d for d in docs if d["src"]["port"] == first_port]
    assert len(mine) == 3
    assert content_key(mine[0]) == content_key(run[0])
    assert content_key(mine[2]) == content_key(run[2])
    # the answer whose question was lost stands alone, marked, with its own content intact
    orphan = mine[1]
    assert orphan["status"] == 200 and orphan["method"] == ""
    assert {"no-request", "gap"} & set(orphan["flags"])
    assert orphan["response"]["body"] == run[1]["response"]["body"]


# --- files cut short, cut down, or overwritten ---------------------------------------------


def record_ends(path: Path) -> list[int]:
    """Byte offsets where each classic pcap record ends."""
    data = path.read_bytes()
    ends, off = [], _PCAP_HEADER
    while off + _PCAP_RECORD.size <= len(data):
        off += _PCAP_RECORD.size + _PCAP_RECORD.unpack_from(data, off)[2]
        ends.append(off)
    return ends


@pytest.mark.parametrize("where", [0.25, 0.5, 0.9, 1.0])
def test_a_truncated_file_gives_the_entries_of_its_complete_records(
    http_capture: HttpCapture, tmp_path: Path, where: float
) -> None:
    data = http_capture.path.read_bytes()
    ends = record_ends(http_capture.path)
    whole = ends[max(0, int(len(ends) * where) - 2)]  # a record boundary near the cut
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: whole + 9])  # and 9 bytes into the next record's header
    clean = tmp_path / "clean.pcap"
    clean.write_bytes(data[:whole])
    code, docs, err = survive(cut)
    assert code == 2, err
    assert docs == entries(clean, "-q")
    if where >= 0.5:
        assert docs, "entries before the cut must be printed"


def test_a_file_cut_inside_its_header_is_an_error(
    http_capture: HttpCapture, tmp_path: Path
) -> None:
    cut = tmp_path / "header.pcap"
    cut.write_bytes(http_capture.path.read_bytes()[:12])
    code, docs, _ = survive(cut)
    assert code == 2 and docs == []


def test_snaplen_96_is_survived_and_marked(http_capture: HttpCapture, tmp_path: Path) -> None:
    small = tmp_path / "s96.pcap"
    subprocess.run(["editcap", "-s", "96", str(http_capture.path), str(small)], check=True)
    code, docs, _ = survive(small)
    assert code == 0
    assert docs, "cut packets still make entries"
    for d in docs:
        assert d["flags"], f"an entry from cut packets must be marked: {d['summary']}"
    http = [d for d in docs if d["protocol"] == "http"]
    assert set(txns(http, "http")) <= set(expected(HTTP_PLAN))


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_overwritten_bytes_inside_frames_are_survived(
    frames: list[Frame], tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    rotten = []
    for ts, lt, data, wire in frames:
        buf = bytearray(data)
        for _ in range(rng.randrange(4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        rotten.append((ts, lt, bytes(buf), wire))
    code, _docs, _ = survive(write_pcap(tmp_path / "rot.pcap", rotten, LINKTYPE_ETHERNET))
    assert code == 0


def test_records_of_random_bytes_are_survived(frames: list[Frame], tmp_path: Path) -> None:
    rng = random.Random(5)
    junk = [
        (frames[0][0] + i * 1e-3, LINKTYPE_ETHERNET, rng.randbytes(rng.randrange(1, 1600)), 0)
        for i in range(2000)
    ]
    mixed = junk[:1000] + frames + junk[1000:]
    code, docs, _ = survive(write_pcap(tmp_path / "junk.pcap", mixed, LINKTYPE_ETHERNET))
    assert code == 0
    assert txns(docs, "http") == expected(HTTP_PLAN)


def test_a_valid_header_followed_by_garbage(http_capture: HttpCapture, tmp_path: Path) -> None:
    path = tmp_path / "garbage-tail.pcap"
    path.write_bytes(http_capture.path.read_bytes()[:_PCAP_HEADER] + random.randbytes(20_000))
    survive(path)


@pytest.mark.parametrize("size", [0, 3, 4, 64, 50_000])
def test_random_files(tmp_path: Path, size: int) -> None:
    path = tmp_path / "random.bin"
    data = random.Random(size).randbytes(size)
    path.write_bytes(b"\xff" + data[1:] if data else data)  # never a capture magic by chance
    code, docs, err = survive(path)
    assert docs == []
    if size == 0:
        assert code == 0  # an empty file holds no packets: not an error
    else:
        assert code == 2
    if size >= 4:
        assert "neither pcap nor pcapng" in err


def test_flags_are_not_repeated(http_capture: HttpCapture, tmp_path: Path) -> None:
    small = tmp_path / "s96.pcap"
    subprocess.run(["editcap", "-s", "96", str(http_capture.path), str(small)], check=True)
    _, docs, _ = survive(small)
    assert docs and all(len(set(d["flags"])) == len(d["flags"]) for d in docs)
