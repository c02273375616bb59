"""AF_PACKET capture, told on a private namespace behind a veth pair.

Unprivileged stories first (unknown interface, refusing to mix `any` with names, lifecycle),
then the integration stories (root): exact capture of a known traffic set compared with
tcpdump on the same interface, the kernel filter, `any` with SLL2 headers, fanout across two
processes, and the refusal without CAP_NET_RAW.  The ring walker itself is covered by
test_tpacket.py.
"""

from __future__ import annotations

import multiprocessing
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pilotfish.capture.afpacket import NEEDS_CAP, AfPacketSource
from pilotfish.capture.base import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    CaptureOptions,
    Source,
    SourceError,
    SourceUnavailable,
)
from pilotfish.model import Frame
from tests.capture.livenet import (
    ETH_HEADER,
    OTHER_UDP_PORT,
    SLL2_HEADER,
    TCP_PORT,
    UDP_PORT,
    VethNs,
    collect,
    have_root,
    l4_of,
    read_pcap,
    record_traffic,
    send_traffic,
    stats_of_unread_traffic,
    tcp_payload,
    tcpdump,
    udp_payload,
    veth_namespace,
)

root_only = pytest.mark.skipif(not have_root(), reason="needs root")
SMALL_RING = {"block_size": 1 << 20, "block_count": 8, "block_timeout_ms": 10}


def options(interfaces: list[str], **kw: Any) -> CaptureOptions:
    return CaptureOptions(interfaces=interfaces, **{**SMALL_RING, **kw})


def udp_frames(frames: list[Frame], port: int = UDP_PORT, offset: int = ETH_HEADER) -> list[bytes]:
    out = []
    for frame in frames:
        parsed = l4_of(frame[2], offset)
        if parsed and parsed[0] == 17 and parsed[2] == port:
            out.append(parsed[3])
    return out


def ours(data: bytes, offset: int = ETH_HEADER) -> bool:
    parsed = l4_of(data, offset)
    return parsed is not None and (
        (parsed[0] == 17 and parsed[2] in (UDP_PORT, OTHER_UDP_PORT))
        or (parsed[0] == 6 and TCP_PORT in (parsed[1], parsed[2]))
    )


# --- unprivileged ------------------------------------------------------------------------------


def test_is_a_source() -> None:
    assert isinstance(AfPacketSource(options(["lo"])), Source)
    assert AfPacketSource.name == "afpacket"


def test_unknown_interface_is_named() -> None:
    source = AfPacketSource(options(["nosuch0xyz"]))
    with pytest.raises(SourceUnavailable) as info:
        source.open()
    assert info.value.backend == "afpacket"
    assert info.value.reason == "no such interface: nosuch0xyz"


def test_any_cannot_mix_with_names() -> None:
    with pytest.raises(SourceUnavailable, match="'any' cannot be combined"):
        AfPacketSource(options(["any", "lo"])).open()


def test_batches_before_open_is_an_error() -> None:
    with pytest.raises(SourceError):
        next(AfPacketSource(options(["lo"])).batches())


def test_close_without_open_is_harmless() -> None:
    source = AfPacketSource(options(["lo"]))
    source.close()
    source.close()
    assert source.stats().received == 0


# --- integration ----------------------------------------------------------------------------


@pytest.fixture
def veth() -> Any:
    if not have_root():
        pytest.skip("needs root")
    with veth_namespace() as env:
        yield env


def _expected_udp(count: int) -> list[bytes]:
    return [udp_payload(seq) for seq in range(count)]


@pytest.mark.integration
@root_only
def test_exact_capture_matches_tcpdump(veth: VethNs, tmp_path: Path) -> None:
    source = AfPacketSource(options([veth.host_if]))
    source.open()
    pcap = tmp_path / "tcpdump.pcap"
    tcp_total = 3 * 100_000

    def complete(frames: list[Frame]) -> bool:
        return len(udp_frames(frames)) >= 500 and _tcp_bytes(frames) >= tcp_total

    with tcpdump(veth.host_if, pcap):
        sender = _in_thread(lambda: send_traffic(veth, count=500, tcp_conns=3))
        frames = collect(source, complete)
        sender.join(timeout=60)
    stats = source.stats()

    assert udp_frames(frames) == _expected_udp(500)  # every datagram, in order, exact bytes
    assert all(f[1] == LINKTYPE_ETHERNET and len(f[2]) == f[3] for f in frames)
    assert _tcp_stream(frames) == b"".join(tcp_payload(c, 100_000) for c in range(3))
    udp_bytes = sum(ETH_HEADER + 28 + len(p) for p in _expected_udp(500))
    assert sum(len(f[2]) for f in frames if _proto(f[2]) == 17) == udp_bytes
    assert stats.received == len(frames)
    assert stats.bytes == sum(len(f[2]) for f in frames)
    assert stats.dropped == 0
    assert int(stats.extra["kernel_packets"]) >= len(frames)

    theirs = Counter(data for data, _ in read_pcap(pcap) if ours(data))
    mine = Counter(f[2] for f in frames if ours(f[2]))
    assert mine == theirs
    assert sorted(f[0] for f in frames) == [f[0] for f in frames]  # ring timestamps ordered


@pytest.mark.integration
@root_only
def test_a_full_ring_drops_and_says_so(veth: VethNs) -> None:
    # two one-page blocks and nobody reading: most of 500 datagrams find no free block
    source = AfPacketSource(options([veth.host_if], block_size=4096, block_count=2))
    stats = stats_of_unread_traffic(source, veth, count=500)
    assert stats.dropped > 0
    assert stats.extra["ring_dropped"] == stats.dropped  # every V3 drop is a full ring
    assert int(stats.extra["kernel_packets"]) >= 500


def _proto(data: bytes) -> int:
    parsed = l4_of(data, ETH_HEADER)
    return parsed[0] if parsed else 0


def _tcp_bytes(frames: list[Frame]) -> int:
    total = 0
    for frame in frames:
        parsed = l4_of(frame[2], ETH_HEADER)
        if parsed and parsed[0] == 6 and parsed[2] == TCP_PORT:
            total += len(parsed[3])
    return total


def _tcp_stream(frames: list[Frame]) -> bytes:
    """Client->server bytes of each TCP connection in connection order (seq-deduplicated)."""
    conns: dict[int, dict[int, bytes]] = {}
    order: list[int] = []
    for frame in frames:
        data = frame[2]
        parsed = l4_of(data, ETH_HEADER)
        if not parsed or parsed[0] != 6 or parsed[2] != TCP_PORT or not parsed[3]:
            continue
        seq = int.from_bytes(data[ETH_HEADER + 24 : ETH_HEADER + 28], "big")
        if parsed[1] not in conns:
            conns[parsed[1]] = {}
            order.append(parsed[1])
        conns[parsed[1]][seq] = parsed[3]
    return b"".join(b"".join(conns[p][s] for s in sorted(conns[p])) for p in order)


def _in_thread(target: Any) -> Any:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.mark.integration
@root_only
def test_kernel_filter_keeps_only_matching(veth: VethNs) -> None:
    source = AfPacketSource(options([veth.host_if], bpf=f"udp port {UDP_PORT}"))
    source.open()
    sender = _in_thread(lambda: send_traffic(veth, count=200, other=200, tcp_conns=1))
    frames = collect(source, lambda fs: len(fs) >= 200)
    sender.join(timeout=60)
    assert udp_frames(frames) == _expected_udp(200)
    assert len(frames) == 200  # nothing else: no 9997 datagrams, no TCP
    assert udp_frames(frames, OTHER_UDP_PORT) == []


@pytest.mark.integration
@root_only
def test_snaplen_cuts_frames(veth: VethNs) -> None:
    source = AfPacketSource(options([veth.host_if], snaplen=64))
    source.open()
    sender = _in_thread(lambda: send_traffic(veth, count=50))
    frames = collect(source, lambda fs: len(fs) >= 50)
    sender.join(timeout=60)
    assert len(frames) == 50
    assert all(len(f[2]) == min(64, f[3]) for f in frames)
    assert max(f[3] for f in frames) > 64


@pytest.mark.integration
@root_only
def test_any_yields_sll2_frames(veth: VethNs) -> None:
    ifindex = socket.if_nametoindex(veth.host_if)
    source = AfPacketSource(options(["any"], bpf=f"udp port {UDP_PORT} and src host {veth.ns_ip}"))
    source.open()
    sender = _in_thread(lambda: send_traffic(veth, count=50, other=20))
    frames = collect(source, lambda fs: len(fs) >= 50)
    sender.join(timeout=60)
    assert len(frames) == 50
    assert udp_frames(frames, offset=SLL2_HEADER) == _expected_udp(50)
    for _ts, linktype, data, wirelen in frames:
        assert linktype == LINKTYPE_LINUX_SLL2
        assert wirelen == len(data)
        assert data[0:2] == b"\x08\x00"  # protocol: IPv4
        assert int.from_bytes(data[4:8], "big") == ifindex
        assert int.from_bytes(data[8:10], "big") == 1  # ARPHRD_ETHER
        assert data[10] == 0  # PACKET_HOST
        assert data[11] == 6  # MAC address length


def _fanout_child(interface: str, group: int, ready: Any, stop: Any, out: Any) -> None:
    source = AfPacketSource(options([interface], fanout_group=group))
    source.open()
    ready.put(True)

    def stopper() -> None:
        stop.wait(60)
        source.close()

    threading.Thread(target=stopper, daemon=True).start()
    flows: Counter[tuple[int, int, int]] = Counter()
    for batch in source.batches():
        for frame in batch:
            if ours(frame[2]):
                parsed = l4_of(frame[2], ETH_HEADER)
                assert parsed is not None
                low, high = sorted((parsed[1], parsed[2]))
                flows[(parsed[0], low, high)] += 1
    out.put(dict(flows))


@pytest.mark.integration
@root_only
def test_fanout_splits_flows_between_processes(veth: VethNs) -> None:
    ctx = multiprocessing.get_context("fork")
    group = 1000 + secrets.randbelow(50_000)
    ready, out = ctx.Queue(), ctx.Queue()
    stop = ctx.Event()
    children = [
        ctx.Process(target=_fanout_child, args=(veth.host_if, group, ready, stop, out))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            assert ready.get(timeout=30)
        send_traffic(veth, count=500, flows=20, tcp_conns=4, tcp_size=20_000)
        time.sleep(0.5)
        stop.set()
        seen = [out.get(timeout=30) for _ in children]
    finally:
        stop.set()
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    udp_flows = [k for part in seen for k in part if k[0] == 17]
    assert len(udp_flows) == len(set(udp_flows)) == 20  # every flow seen by exactly one
    assert sum(n for part in seen for k, n in part.items() if k[0] == 17) == 500
    assert all(n == 25 for part in seen for k, n in part.items() if k[0] == 17)
    tcp_flows = [k for part in seen for k in part if k[0] == 6]
    assert len(tcp_flows) == len(set(tcp_flows)) == 4  # both directions went to one process
    assert all(part for part in seen)  # the hash actually split the work


@pytest.mark.integration
@root_only
def test_without_cap_net_raw_the_reason_is_exact() -> None:
    code = (
        "from pilotfish.capture.afpacket import AfPacketSource\n"
        "from pilotfish.capture.base import CaptureOptions, SourceUnavailable\n"
        "try:\n"
        "    AfPacketSource(CaptureOptions(interfaces=['lo'])).open()\n"
        "except SourceUnavailable as exc:\n"
        "    print(exc)\n"
    )
    if shutil.which("capsh"):
        cmd = ["capsh", "--drop=cap_net_raw", "--", "-c", 'exec "$0" -c "$1"', sys.executable,
               code]  # fmt: skip
    else:
        cmd = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", sys.executable,
               "-c", code]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"afpacket: {NEEDS_CAP}", result.stderr


@pytest.mark.integration
@root_only
def test_idle_interface_yields_empty_batches(veth: VethNs) -> None:
    """With no traffic the source still comes back (empty), so consumers can run timers."""
    source = AfPacketSource(CaptureOptions(interfaces=[veth.host_if], bpf="udp port 1"))
    source.open()
    try:
        batches = source.batches()
        assert next(batches) == []
    finally:
        source.close()


def _read_until_closed(source: AfPacketSource, started: threading.Event) -> list[Frame]:
    frames: list[Frame] = []
    for batch in source.batches():
        started.set()
        frames.extend(batch)
    return frames


@pytest.mark.integration
@root_only
def test_stop_hands_over_the_block_still_being_filled(veth: VethNs) -> None:
    """Packets sit in a block the kernel has not retired (1 s timeout); closing right after
    they were sent still delivers every one, within two block timeouts."""
    timeout_ms = 1000
    source = AfPacketSource(
        options([veth.host_if], bpf=f"udp port {UDP_PORT}", block_timeout_ms=timeout_ms)
    )
    source.open()
    started = threading.Event()
    result: list[list[Frame]] = []
    reader = _in_thread(lambda: result.append(_read_until_closed(source, started)))
    assert started.wait(5)  # in batches(): the first idle batch came back
    send_traffic(veth, count=300)
    stopped_at = time.monotonic()
    source.close()
    reader.join(timeout=10)
    waited = time.monotonic() - stopped_at

    assert not reader.is_alive()
    assert udp_frames(result[0]) == _expected_udp(300)
    assert waited < 2 * timeout_ms / 1000 + 0.5
    assert source.stats().received == 300
    source.close()  # again: harmless


@pytest.mark.integration
@root_only
def test_stop_on_an_idle_ring_does_not_wait(veth: VethNs) -> None:
    source = AfPacketSource(options([veth.host_if], bpf="udp port 1", block_timeout_ms=1000))
    source.open()
    batches = source.batches()
    assert next(batches) == []
    stopped_at = time.monotonic()
    source.close()
    assert list(batches) == []
    assert time.monotonic() - stopped_at < 0.2


# --- straight to pcap records (capture -w) ------------------------------------------------------


@pytest.mark.integration
@root_only
def test_pcap_records_hold_every_frame_exactly(veth: VethNs, tmp_path: Path) -> None:
    source = AfPacketSource(options([veth.host_if], bpf=f"udp port {UDP_PORT}", snaplen=200))
    source.open()
    assert source.record_linktype() == LINKTYPE_ETHERNET
    got, _ = record_traffic(source, veth, tmp_path / "records.pcap", snaplen=150)
    expected = _expected_udp(500)
    assert len(got) == 500 == source.stats().received  # the filter kept the others out
    assert [f[3] for f in got] == [ETH_HEADER + 28 + len(p) for p in expected]
    assert [f[2] for f in got] == [
        (f[2][: ETH_HEADER + 28] + p)[:150] for f, p in zip(got, expected, strict=True)
    ]  # cut to the writer's snaplen, the datagrams in order
    assert [f[0] for f in got] == sorted(f[0] for f in got)
    assert all(abs(f[0] - time.time()) < 60 for f in got)  # ring timestamps, nanoseconds


@pytest.mark.integration
@root_only
def test_a_user_space_filter_keeps_records_off(veth: VethNs) -> None:
    # a filter reading the link address of cooked frames cannot run in the kernel
    source = AfPacketSource(options(["any"], bpf="link[12] == 2"))
    source.open()
    try:
        assert source.record_linktype() is None
        with pytest.raises(SourceError, match="records"):
            next(source.pcap_batches(65535, True))
    finally:
        source.close()


@pytest.mark.integration
@root_only
@pytest.mark.parametrize(("interface", "offset"), [("lo", ETH_HEADER), ("any", SLL2_HEADER)])
def test_loopback_frames_are_captured_once_like_tcpdump(
    interface: str, offset: int, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        source = AfPacketSource(options([interface], bpf=f"udp port {port}"))
        source.open()
        pcap = tmp_path / "lo.pcap"
        sent = [b"datagram %d" % i for i in range(200)]
        with tcpdump("lo", pcap), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in sent:
                sender.sendto(payload, ("127.0.0.1", port))
            frames = collect(source, lambda fs: len(fs) >= len(sent))
    assert udp_frames(frames, port, offset) == sent  # each once: the sent copy skipped
    assert source.stats().extra["loopback_echoes"] == len(sent)
    parsed = [l4_of(data, ETH_HEADER) for data, _ in read_pcap(pcap)]
    assert [p[3] for p in parsed if p is not None and p[2] == port] == sent  # tcpdump: once
