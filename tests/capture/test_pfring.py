"""PF_RING through libpfring's C API, exercised with a stand-in library built here.

PF_RING's kernel module cannot load on this machine, so the test builds the testbed's stand-in
(the same exported functions and struct layouts, implemented on AF_PACKET) with gcc and loads it
through `PfRingSource(library=...)`, the path the real library takes.  Stories: no library ->
the install hint; pfring_open failing with EAFNOSUPPORT -> the kernel-module reason, with
EPERM -> the capability reason; a library missing a function; and (root) exact capture of
known traffic in a private namespace, with and without a filter.
"""

from __future__ import annotations

import ctypes.util
import errno
import hashlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from pilotfish.capture.base import LINKTYPE_ETHERNET, CaptureOptions, Source, SourceUnavailable
from pilotfish.capture.pfring import (
    ENV_LIBRARY,
    NEEDS_CAP,
    NO_MODULE,
    NOT_FOUND,
    PfRingSource,
    find_library,
)
from pilotfish.model import Frame
from pilotfish.testbed.pfring_standin import build_standin
from tests.capture.livenet import (
    ETH_HEADER,
    UDP_PORT,
    VethNs,
    collect,
    have_root,
    l4_of,
    record_traffic,
    send_traffic,
    stats_of_unread_traffic,
    udp_payload,
    veth_namespace,
)

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    return build_standin(tmp_path_factory.mktemp("pfring"))


def options(**kw: Any) -> CaptureOptions:
    return CaptureOptions(**{"interfaces": ["lo"], **kw})


def test_is_a_source() -> None:
    assert isinstance(PfRingSource(options()), Source)
    assert PfRingSource.name == "pfring"


def test_without_a_library_it_declines_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_LIBRARY, raising=False)
    if ctypes.util.find_library("pfring"):
        pytest.skip("a real libpfring is installed here")
    with pytest.raises(SourceUnavailable) as info:
        PfRingSource(options()).open()
    assert str(info.value) == f"pfring: {NOT_FOUND}"
    assert info.value.reason == "libpfring not found (install PF_RING userland library)"


def test_library_lookup_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIBRARY, "/from/env.so")
    assert find_library("/explicit.so") == "/explicit.so"
    assert find_library() == "/from/env.so"


def test_unloadable_library_is_a_refusal(tmp_path: Path) -> None:
    bogus = tmp_path / "libpfring.so"
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(SourceUnavailable, match="libpfring not found"):
        PfRingSource(options(), library=str(bogus)).open()


@needs_gcc
def test_missing_kernel_module_reason(tmp_path: Path) -> None:
    lib = build_standin(tmp_path, f"-DSHIM_FAIL_ERRNO={errno.EAFNOSUPPORT}")
    with pytest.raises(SourceUnavailable) as info:
        PfRingSource(options(), library=str(lib)).open()
    assert info.value.reason == NO_MODULE == "pf_ring kernel module not loaded"


@needs_gcc
def test_permission_reason(tmp_path: Path) -> None:
    lib = build_standin(tmp_path, f"-DSHIM_FAIL_ERRNO={errno.EPERM}")
    with pytest.raises(SourceUnavailable) as info:
        PfRingSource(options(), library=str(lib)).open()
    assert info.value.reason == NEEDS_CAP


@needs_gcc
def test_library_missing_a_function(tmp_path: Path) -> None:
    source = tmp_path / "partial.c"
    source.write_text("void *pfring_open(const char *d, unsigned c, unsigned f) { return 0; }\n")
    lib = tmp_path / "libpartial.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    with pytest.raises(SourceUnavailable, match="lacks pfring_set_application_name"):
        PfRingSource(options(), library=str(lib)).open()


@pytest.mark.integration
def test_unknown_interface_through_the_shim(shim: Path) -> None:
    with pytest.raises(SourceUnavailable) as info:
        PfRingSource(options(interfaces=["nosuch0xyz"]), library=str(shim)).open()
    assert info.value.reason in ("no such interface: nosuch0xyz", NO_MODULE)


@pytest.fixture
def veth() -> Any:
    if not have_root():
        pytest.skip("needs root")
    with veth_namespace() as env:
        yield env


def udp_9999(frames: list[Frame]) -> list[bytes]:
    out = []
    for frame in frames:
        parsed = l4_of(frame[2], ETH_HEADER)
        if parsed and parsed[0] == 17 and parsed[2] == UDP_PORT:
            out.append(parsed[3])
    return out


@pytest.mark.integration
def test_captures_exactly_through_the_shim(shim: Path, veth: VethNs) -> None:
    source = PfRingSource(
        options(interfaces=[veth.host_if], bpf=f"udp port {UDP_PORT}", promiscuous=True),
        library=str(shim),
    )
    source.open()
    sender = threading.Thread(target=lambda: send_traffic(veth, count=500, other=100), daemon=True)
    sender.start()
    frames = collect(source, lambda fs: len(fs) >= 500)
    sender.join(timeout=60)
    expected = [udp_payload(seq) for seq in range(500)]
    assert len(frames) == 500  # the filter kept the 9997 datagrams out
    got = udp_9999(frames)
    assert [hashlib.sha256(p).digest() for p in got] == [
        hashlib.sha256(p).digest() for p in expected
    ]
    assert all(f[1] == LINKTYPE_ETHERNET and len(f[2]) == f[3] for f in frames)
    stats = source.stats()
    assert stats.received == 500
    assert stats.bytes == sum(ETH_HEADER + 28 + len(p) for p in expected)
    assert stats.dropped == stats.extra["ring_dropped"] == 0
    assert stats.extra["bad_headers"] == stats.extra["recv_errors"] == 0
    assert stats.backend == "pfring"


@pytest.mark.integration
def test_library_from_the_environment(
    shim: Path, veth: VethNs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LIBRARY, str(shim))
    source = PfRingSource(options(interfaces=[veth.host_if]))
    source.open()
    sender = threading.Thread(target=lambda: send_traffic(veth, count=50), daemon=True)
    sender.start()
    frames = collect(source, lambda fs: len(udp_9999(fs)) >= 50)
    sender.join(timeout=60)
    assert udp_9999(frames) == [udp_payload(seq) for seq in range(50)]
    source.close()  # a second close is harmless
    assert source.stats().received == len(frames)


@pytest.mark.integration
def test_close_hands_over_what_the_ring_still_holds(shim: Path, veth: VethNs) -> None:
    """Datagrams queued in the ring when close() is called still come out of batches()."""
    source = PfRingSource(
        options(interfaces=[veth.host_if], bpf=f"udp port {UDP_PORT}"), library=str(shim)
    )
    source.open()
    batches = source.batches()
    assert next(batches) == []  # idle, nothing read yet
    send_traffic(veth, count=40)
    source.close()
    rest = [frame for batch in batches for frame in batch]
    assert udp_9999(rest) == [udp_payload(seq) for seq in range(40)]
    assert source.stats().received == 40


@pytest.mark.integration
def test_a_full_ring_drops_and_says_so(tmp_path: Path, veth: VethNs) -> None:
    """Nobody reading a stand-in with a tiny queue: it fills, and pfring_stats' drop is
    reported whole as ring drops."""
    small = build_standin(tmp_path, "-DSHIM_QUEUE_BYTES=4096", name="libpfsmall.so")
    source = PfRingSource(
        options(interfaces=[veth.host_if], bpf=f"udp port {UDP_PORT}"), library=str(small)
    )
    stats = stats_of_unread_traffic(source, veth, count=500)
    assert stats.dropped > 0
    assert stats.extra["ring_dropped"] == stats.dropped


@pytest.mark.integration
def test_records_through_the_shim_hold_every_frame(
    shim: Path, veth: VethNs, tmp_path: Path
) -> None:
    source = PfRingSource(
        options(interfaces=[veth.host_if], bpf=f"udp port {UDP_PORT}"), library=str(shim)
    )
    source.open()
    assert source.record_linktype() == LINKTYPE_ETHERNET
    got, written = record_traffic(source, veth, tmp_path / "records.pcap")
    assert udp_9999(got) == [udp_payload(seq) for seq in range(500)]
    assert len(got) == 500 == source.stats().received == written
    assert source.stats().bytes == sum(len(f[2]) for f in got)
