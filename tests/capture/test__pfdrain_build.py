"""The PF_RING receive loop (`_pfdrain`), driven by a scripted `pfring_recv` built here.

The script hands out, in order: a good frame, a header with caplen > len, a NULL data
pointer, a second good frame (cut at capture: 100 of 1500 bytes), a failed call, then
"empty" forever.  The loop must copy the good frames back to back with their lengths and
timestamps, count the bad headers and the failure, and respect its frame and byte limits.
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
from typing import Any

import pytest

from pilotfish.capture import _pfdrain_build
from pilotfish.capture.pfring import load_helper

SCRIPT = r"""
#include <stdint.h>
#include <stddef.h>
#include <sys/time.h>

struct hdr { struct timeval ts; uint32_t caplen; uint32_t len; } __attribute__((packed));
static unsigned char payload[2048];
static int step;

void script_reset(void)
{
    step = 0;
    for (int i = 0; i < 2048; i++)
        payload[i] = (unsigned char)(i * 7);
}

int script_recv(void *ring, unsigned char **buf, unsigned int blen, struct hdr *h, uint8_t wait)
{
    (void)ring; (void)blen; (void)wait;
    switch (step++) {
    case 0: h->ts.tv_sec = 10; h->ts.tv_usec = 500000; h->caplen = 60; h->len = 60;
            *buf = payload; return 1;
    case 1: h->caplen = 70; h->len = 60; *buf = payload; return 1;
    case 2: h->caplen = 10; h->len = 10; *buf = NULL; return 1;
    case 3: h->ts.tv_sec = 11; h->ts.tv_usec = 250000; h->caplen = 100; h->len = 1500;
            *buf = payload + 3; return 1;
    case 4: return -1;
    default: return 0;
    }
}
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    directory = tmp_path_factory.mktemp("pfdrain")
    source, lib = directory / "script.c", directory / "libscript.so"
    source.write_text(SCRIPT)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    return ctypes.CDLL(str(lib))


def drain(script: ctypes.CDLL, max_frames: int, snaplen: int, cap: int) -> dict[str, Any]:
    ffi, lib = load_helper()
    script.script_reset()
    recv = ffi.cast("void *", ctypes.cast(script.script_recv, ctypes.c_void_p).value)
    buf = ffi.new("uint8_t[]", cap or 1)
    caplens, wirelens = ffi.new("uint32_t[]", 8), ffi.new("uint32_t[]", 8)
    stamps, counts = ffi.new("double[]", 8), ffi.new("uint64_t[2]")
    n = lib.pf_ring_drain(
        recv, ffi.NULL, max_frames, snaplen, buf, cap, caplens, wirelens, stamps, counts
    )
    return {
        "n": n,
        "caplens": list(caplens[0:n]),
        "wirelens": list(wirelens[0:n]),
        "stamps": list(stamps[0:n]),
        "data": ffi.buffer(buf, sum(caplens[0:n]))[:],
        "counts": list(counts),
    }


def payload() -> bytes:
    return bytes((i * 7) & 0xFF for i in range(2048))


def test_builder_declares_the_drain_call() -> None:
    assert "pf_ring_drain" in _pfdrain_build.CDEF


def test_good_frames_are_copied_and_bad_ones_counted(script: ctypes.CDLL) -> None:
    got = drain(script, max_frames=8, snaplen=2048, cap=8192)
    assert got["n"] == 2
    assert got["caplens"] == [60, 100]
    assert got["wirelens"] == [60, 1500]
    assert got["stamps"] == [10.5, 11.25]
    assert got["data"] == payload()[:60] + payload()[3:103]
    assert got["counts"] == [2, 1]  # caplen > len and NULL; one failed call ended the batch


def test_the_frame_limit_ends_a_batch(script: ctypes.CDLL) -> None:
    got = drain(script, max_frames=1, snaplen=2048, cap=8192)
    assert (got["n"], got["caplens"], got["counts"]) == (1, [60], [0, 0])


def test_a_batch_ends_before_the_buffer_could_overflow(script: ctypes.CDLL) -> None:
    # room for one snaplen only: the first frame is taken, then the loop stops asking
    got = drain(script, max_frames=8, snaplen=2048, cap=2048 + 59)
    assert (got["n"], got["caplens"], got["counts"]) == (1, [60], [0, 0])
    assert drain(script, max_frames=8, snaplen=2048, cap=2047)["n"] == 0


def test_frames_longer_than_snaplen_are_cut(script: ctypes.CDLL) -> None:
    got = drain(script, max_frames=8, snaplen=64, cap=8192)
    assert got["caplens"] == [60, 64]
    assert got["wirelens"] == [60, 1500]


def records(script: ctypes.CDLL, snaplen: int, nanosecond: bool, cap: int = 8192) -> tuple:
    ffi, lib = load_helper()
    script.script_reset()
    recv = ffi.cast("void *", ctypes.cast(script.script_recv, ctypes.c_void_p).value)
    buf, used, counts = ffi.new("uint8_t[]", cap), ffi.new("size_t *"), ffi.new("uint64_t[2]")
    n = lib.pf_ring_records(recv, ffi.NULL, 8, snaplen, nanosecond, buf, cap, used, counts)
    return n, ffi.buffer(buf, used[0])[:], list(counts)


def test_records_are_classic_pcap_with_the_header_times(script: ctypes.CDLL) -> None:
    n, data, counts = records(script, snaplen=2048, nanosecond=False)
    first = struct.pack("<IIII", 10, 500_000, 60, 60) + payload()[:60]
    second = struct.pack("<IIII", 11, 250_000, 100, 1500) + payload()[3:103]
    assert (n, data, counts) == (2, first + second, [2, 1])
    n, data, _ = records(script, snaplen=64, nanosecond=True)
    assert (
        data
        == struct.pack("<IIII", 10, 500_000_000, 60, 60)
        + payload()[:60]
        + struct.pack("<IIII", 11, 250_000_000, 64, 1500)
        + payload()[3:67]
    )


def test_records_stop_before_the_buffer_could_overflow(script: ctypes.CDLL) -> None:
    assert records(script, snaplen=2048, nanosecond=False, cap=2048 + 15)[0] == 0
    n, data, _ = records(script, snaplen=2048, nanosecond=False, cap=2048 + 16 + 75)
    assert n == 1 and len(data) == 76  # one 60-byte frame, then too little room for another
