"""AF_XDP batches cut in C: into frame tuples, or into pcap records holding the same bytes."""

from __future__ import annotations

import struct
from array import array

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture._xskframes import split_frames, write_records
from pilotfish.capture.base import LINKTYPE_ETHERNET


def batch(frames: list[bytes]) -> tuple[bytes, memoryview]:
    return b"".join(frames), memoryview(array("I", [len(f) for f in frames]))


@given(st.lists(st.binary(max_size=300), max_size=12), st.integers(0, 400), st.booleans())
def test_records_hold_what_the_frames_hold(frames: list[bytes], snaplen: int, ns: bool) -> None:
    buf, lens = batch(frames)
    tuples: list[tuple[float, int, bytes, int]] = []
    nbytes = split_frames(buf, lens, len(frames), 1.5, LINKTYPE_ETHERNET, snaplen, tuples)
    frac = 500_000_000 if ns else 500_000
    out = bytearray(3 + sum(16 + len(f) for f in frames))
    end, count, written = write_records(buf, lens, len(frames), 1, frac, snaplen, out, 3)
    expected = b"".join(
        struct.pack("<IIII", 1, frac, len(data), wire) + data for _, _, data, wire in tuples
    )
    assert bytes(out[3:end]) == expected
    assert count == len(tuples) == len(frames) and written == nbytes


def test_a_length_past_the_batch_or_the_buffer_ends_it() -> None:
    buf, _ = batch([b"a" * 10, b"b" * 10])
    lens = memoryview(array("I", [10, 50]))  # the second runs past the batch
    out = bytearray(100)
    assert write_records(buf, lens, 2, 7, 0, 65535, out, 0) == (26, 1, 10)
    small = bytearray(30)  # room for one record of 26 bytes
    assert write_records(buf, memoryview(array("I", [10, 10])), 2, 7, 0, 65535, small, 0)[:2] == (
        26,
        1,
    )
    assert write_records(buf, lens, 2, 7, 0, 65535, out, 101) == (101, 0, 0)  # bad offset
