"""capture/afxdp.py: the passive AF_XDP source.

Story: the pure decisions (capabilities, errno reasons, UMEM geometry) first; then the decline
paths (helper missing, "any", unknown interface, mirror links, MTU too large, no capability);
then, in private namespaces, a real HTTP server answers every one of 300 requests while the
source captures exactly the frames tcpdump records on the same interface; close() leaves
nothing behind; a SIGKILLed capture leaves state that the next open() replaces.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.afxdp import (
    CAP_BPF,
    CAP_NET_ADMIN,
    CAP_NET_RAW,
    CAP_SYS_ADMIN,
    CAPS_REASON,
    LINK_HEADER,
    XDP_PACKET_HEADROOM,
    AfXdpSource,
    check_frame_geometry,
    effective_capabilities,
    load_helper,
    missing_capabilities,
    socket_errno_reason,
    umem_geometry,
    xdp_drops,
)
from pilotfish.capture.base import CaptureOptions, Source, SourceUnavailable
from pilotfish.capture.mirror import MIRROR_PREF, is_mirror_name
from tests.capture.test_mirror import TIMEOUT, NsPair, needs_root, ns_pair, udp_exchange
from tests.capture.xdpsession import (
    assert_clean,
    finish,
    read_records,
    ready,
    run_session,
    start_capture,
)

REQUESTS = 300
BPFFS_ABSENT = "absent (libxdp runs without its dispatcher)"

# --- pure decisions --------------------------------------------------------------------------


def test_source_protocol_and_name() -> None:
    src = AfXdpSource(CaptureOptions(interfaces=["lo"]))
    assert isinstance(src, Source) and src.name == "afxdp"
    assert src.stats().received == 0


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        AfXdpSource(CaptureOptions(interfaces=["lo"]), mode="turbo")


def test_effective_capabilities_from_status_text() -> None:
    text = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
    assert effective_capabilities(text) == 0x1FFFFFFFFFF
    assert effective_capabilities("CapEff:\tzz\n") == 0
    assert effective_capabilities("") == 0


@given(st.text())
def test_effective_capabilities_never_raises(text: str) -> None:
    assert effective_capabilities(text) >= 0


def _bits(*caps: int) -> int:
    return sum(1 << c for c in caps)


def test_capability_sets() -> None:
    bit = _bits
    assert not missing_capabilities(bit(CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF))
    assert not missing_capabilities(bit(CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN))
    assert missing_capabilities(bit(CAP_NET_ADMIN, CAP_NET_RAW))
    assert missing_capabilities(bit(CAP_NET_RAW, CAP_BPF))
    assert missing_capabilities(0)


def test_socket_errno_reasons() -> None:
    import errno

    assert "kernel without AF_XDP" in socket_errno_reason(errno.EAFNOSUPPORT)
    assert socket_errno_reason(errno.EPERM) == CAPS_REASON
    assert "CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN)" in CAPS_REASON
    assert "socket(AF_XDP) failed" in socket_errno_reason(errno.ENOMEM)


def test_frame_geometry() -> None:
    assert check_frame_geometry(1500, 4096, 4096) is None
    assert check_frame_geometry(1500, 2048, 4096) is None
    assert check_frame_geometry(9000, 4096, 4096) == "MTU 9000 too large for UMEM frame size 4096"
    assert "not supported" in str(check_frame_geometry(1500, 3000, 4096))
    assert "not supported" in str(check_frame_geometry(1500, 8192, 4096))
    assert "not supported" in str(check_frame_geometry(100, 1024, 4096))


@given(st.integers(min_value=68, max_value=65535), st.sampled_from([2048, 4096]))
def test_frame_geometry_property(mtu: int, frame: int) -> None:
    fits = mtu + LINK_HEADER <= frame - XDP_PACKET_HEADROOM
    assert (check_frame_geometry(mtu, frame, 4096) is None) == fits


def test_umem_geometry_keeps_the_bytes_when_the_mtu_needs_bigger_frames() -> None:
    assert umem_geometry(1500, 32768, 2048, 4096) == (32768, 2048)
    assert umem_geometry(3000, 32768, 2048, 4096) == (16384, 4096)
    assert umem_geometry(3000, 64, 2048, 4096) == (64, 4096)
    with pytest.raises(ValueError, match="MTU 9000 too large for UMEM frame size 4096"):
        umem_geometry(9000, 32768, 2048, 4096)
    with pytest.raises(ValueError, match="not supported"):
        umem_geometry(1500, 32768, 3000, 4096)


def _xdp(**counts: int) -> dict[str, int]:
    base = dict.fromkeys(
        ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
         "rx_fill_ring_empty_descs", "tx_ring_empty_descs"),
        0,
    )  # fmt: skip
    return {**base, **counts}


def test_ring_drops_are_full_rx_ring_and_empty_fill_ring() -> None:
    # an empty fill ring is counted by the kernel in rx_dropped too; frames too big are not ring
    counters = _xdp(rx_dropped=7, rx_ring_full=5, rx_fill_ring_empty_descs=4)
    assert xdp_drops(counters) == (12, 9)
    assert xdp_drops(_xdp()) == (0, 0)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_ring_drops_never_exceed_dropped(dropped: int, full: int, empty: int) -> None:
    total, ring = xdp_drops(
        _xdp(rx_dropped=dropped, rx_ring_full=full, rx_fill_ring_empty_descs=empty)
    )
    assert 0 <= ring <= total == dropped + full


def test_helper_is_built_and_exports_the_batch_api() -> None:
    _ffi, lib = load_helper()
    for fn in ("pf_xsk_open", "pf_xsk_recv", "pf_xsk_stats", "pf_xsk_info", "pf_xsk_close"):
        assert hasattr(lib, fn)


# --- declines --------------------------------------------------------------------------------


def _decline(options: CaptureOptions) -> str:
    with pytest.raises(SourceUnavailable) as info:
        AfXdpSource(options).open()
    assert info.value.backend == "afxdp"
    return info.value.reason


def test_declines_without_the_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pilotfish.capture._xsk", None)
    assert _decline(CaptureOptions(interfaces=["lo"])).startswith("AF_XDP helper not built")


def test_declines_any() -> None:
    assert "'any' is not supported by AF_XDP" in _decline(CaptureOptions(interfaces=["any"]))


def test_declines_unknown_interface() -> None:
    name = f"nope{secrets.token_hex(4)}"
    assert _decline(CaptureOptions(interfaces=[name])) == f"unknown interface {name!r}"


def test_declines_no_interface_and_mirror_links() -> None:
    assert _decline(CaptureOptions(interfaces=[])) == "no interface given"
    assert "pilotfish mirror link" in _decline(CaptureOptions(interfaces=["pfx3b"]))


_DECLINE = """
import sys
from pilotfish.capture.afxdp import AfXdpSource
from pilotfish.capture.base import CaptureOptions, SourceUnavailable
try:
    AfXdpSource(CaptureOptions(interfaces=[sys.argv[1]], umem_frame_size=int(sys.argv[2]))).open()
except SourceUnavailable as exc:
    print(exc.reason)
else:
    print("opened")
"""


@pytest.mark.integration
@needs_root
def test_declines_mtu_too_large_for_the_frame() -> None:
    with ns_pair() as pair:
        pair.run(pair.client, "ip", "link", "set", pair.client_if, "mtu", "9000")
        reason = pair.python(pair.client, _DECLINE, pair.client_if, "4096").strip()
        assert reason == f"{pair.client_if}: MTU 9000 too large for UMEM frame size 4096"
        assert not [n for n in pair.links() if is_mirror_name(n)]  # declined before touching


@pytest.mark.integration
@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_declines_without_capabilities() -> None:
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--"]
    out = subprocess.run(
        [*drop, sys.executable, "-c", _DECLINE, "lo", "4096"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout.strip()
    assert out == CAPS_REASON


# --- capturing for real ----------------------------------------------------------------------


@pytest.mark.integration
@needs_root
@pytest.mark.parametrize(
    ("mode", "mount", "expect_mode"), [("auto", True, "native"), ("skb", False, "skb")]
)
def test_passive_capture_matches_tcpdump(
    tmp_path: Path, mode: str, mount: bool, expect_mode: str
) -> None:
    with ns_pair() as pair:
        body = b"pilotfish says hi\n"
        ours, theirs, extra, stats = run_session(pair, tmp_path, mode, mount, body, REQUESTS)
        assert_clean(pair)
    assert extra["xdp_mode"] == expect_mode and extra["zerocopy"] == 0
    assert extra["bpffs"] == ("mounted by pilotfish" if mount else BPFFS_ABSENT)
    assert len(theirs) >= REQUESTS * 8  # a TCP handshake, request, response, teardown each
    assert len(ours) == len(theirs)
    assert collections.Counter(ours) == collections.Counter(theirs)
    assert stats["received"] == len(ours) and stats["bytes"] == sum(map(len, ours))
    assert stats["dropped"] == 0 and stats["if_dropped"] == 0
    assert stats["extra"]["ring_dropped"] == 0  # type: ignore[index]


def _tcp_payload_bytes(frames: list[bytes]) -> int:
    total = 0
    for frame in frames:
        if frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        ihl = (frame[14] & 0x0F) * 4
        (ip_len,) = struct.unpack_from("!H", frame, 16)
        total += ip_len - ihl - (frame[14 + ihl + 12] >> 4) * 4
    return total


@pytest.mark.integration
@needs_root
@pytest.mark.parametrize("mode", ["native", "skb"])
def test_super_frames_are_segmented_not_lost(tmp_path: Path, mode: str) -> None:
    """With TSO/GSO on, tcpdump sees 64 KB frames; the mirror hands the XSK wire-size ones."""
    with ns_pair() as pair:
        body = bytes(range(256)) * 1024  # 256 KiB per response
        ours, theirs, _, stats = run_session(pair, tmp_path, mode, True, body, 20)
        assert_clean(pair)
    assert max(map(len, theirs)) > 1514  # the super-frames are really there
    assert max(map(len, ours)) <= 1514
    assert _tcp_payload_bytes(ours) == _tcp_payload_bytes(theirs) >= 20 * len(body)
    assert stats["dropped"] == 0 and stats["if_dropped"] == 0


_LOOP = """
import sys, threading
from pilotfish.capture.afxdp import AfXdpSource
from pilotfish.capture.base import CaptureOptions, SourceError
src = AfXdpSource(CaptureOptions(interfaces=[sys.argv[1]], block_timeout_ms=20),
                  state_dir=sys.argv[2])
src.open()
print("open", flush=True)
closers = [threading.Timer(0.2, src.close) for _ in range(3)] if sys.argv[3] == "threads" else []
for t in closers:
    t.start()
try:
    n = sum(1 for _ in src.batches())  # until closed, killed, or the interface goes away
    print("ended", n > 0, flush=True)
except SourceError as exc:
    print(exc, flush=True)
for t in closers:
    t.join()
src.close()
src.close()
print(src.stats().extra["xdp_mode"], list(src.batches()), flush=True)
"""


def _spawn_loop(pair: NsPair, tmp: Path, how: str) -> subprocess.Popen[str]:
    """A child in the client namespace that opened the source and sits in batches()."""
    cmd = ["ip", "netns", "exec", pair.client, sys.executable, "-c", _LOOP]
    child = subprocess.Popen(
        [*cmd, pair.client_if, str(tmp), how], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "open"
    return child


@pytest.mark.integration
@needs_root
def test_killed_capture_leaves_state_the_next_open_replaces(tmp_path: Path) -> None:
    with ns_pair() as pair:
        holder = _spawn_loop(pair, tmp_path / "state", "wait")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=TIMEOUT)
        assert [n for n in pair.links() if is_mirror_name(n)]
        assert pair.filter_prefs("ingress") == {MIRROR_PREF} == pair.filter_prefs("egress")

        capture = start_capture(pair, tmp_path, on_term="close")
        ready(capture)
        assert pair.filter_prefs("ingress") == {MIRROR_PREF}
        assert len([n for n in pair.links() if is_mirror_name(n)]) == 2
        _, log = finish(capture)
        assert "replacing state of an earlier run" in log
        assert_clean(pair)  # the clsact of the killed run is removed too


_HOLD = """
import sys
from pilotfish.capture.afxdp import AfXdpSource
from pilotfish.capture.base import CaptureOptions
src = AfXdpSource(CaptureOptions(interfaces=[sys.argv[1]]), state_dir=sys.argv[2])
src.open()
batches = src.batches()
assert next(batches) == []  # idle: inside batches(), nothing read yet
print("ready", flush=True)
sys.stdin.readline()  # meanwhile the datagrams wait in the RX ring
src.close()
rest = [frame for batch in batches for frame in batch]
print(sum(frame[2][23:24] == b"\\x11" for frame in rest), src.stats().received, flush=True)
"""


@pytest.mark.integration
@needs_root
def test_close_hands_over_what_the_rx_ring_holds(tmp_path: Path) -> None:
    """Frames that reached the RX ring before close() still come out of batches()."""
    code, out = _unread_datagrams(_HOLD, tmp_path)
    udp, received = map(int, out.split())
    assert code == 0 and udp == 300 and received >= 300


def _unread_datagrams(script: str, tmp_path: Path) -> tuple[int, str]:
    """Run `script` (an AF_XDP source on the client end that says "ready", then waits for a
    line) in the client namespace; send it 300 datagrams nobody reads yet, let it go on,
    check nothing is left behind; its exit code and output."""
    with ns_pair() as pair:
        argv = [sys.executable, "-c", script, pair.client_if, str(tmp_path / "state")]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
        with subprocess.Popen(["ip", "netns", "exec", pair.client, *argv], **pipes) as child:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            pair.python(pair.server, _UDP_TO, pair.client_ip, "9", "300")
            time.sleep(0.3)  # into the RX ring, which nobody reads yet
            out, _ = child.communicate("go\n", timeout=TIMEOUT)
        assert_clean(pair)
    return child.returncode, out


_FULL = """
import json, sys
from pilotfish.capture.afxdp import AfXdpSource
from pilotfish.capture.base import CaptureOptions
src = AfXdpSource(CaptureOptions(interfaces=[sys.argv[1]], umem_frames=64), state_dir=sys.argv[2])
src.open()
print("ready", flush=True)
sys.stdin.readline()  # meanwhile the datagrams fill the 64 UMEM frames, nobody reading
st = src.stats()
src.close()
print(json.dumps({"dropped": st.dropped, "if_dropped": st.if_dropped, **st.extra}), flush=True)
"""


@pytest.mark.integration
@needs_root
def test_a_full_ring_drops_and_says_so_once(tmp_path: Path) -> None:
    """64 UMEM frames and nobody reading: the rest of 300 datagrams find no free frame; the
    XSK's drops are all ring drops, and not counted again as the mirror veth's."""
    _, out = _unread_datagrams(_FULL, tmp_path)
    stats = json.loads(out)
    assert stats["dropped"] >= 300 - 64
    assert stats["ring_dropped"] == stats["dropped"]
    assert stats["if_dropped"] == 0


@pytest.mark.integration
@needs_root
def test_close_from_other_threads_ends_batches_and_is_idempotent(tmp_path: Path) -> None:
    with ns_pair() as pair:
        out, _ = _spawn_loop(pair, tmp_path, "threads").communicate(timeout=TIMEOUT)
        assert out.splitlines() == ["ended True", "native []"]  # counters readable after close
        assert_clean(pair)


@pytest.mark.integration
@needs_root
def test_watched_interface_vanishing_ends_capture_and_close_cleans(tmp_path: Path) -> None:
    with ns_pair() as pair:
        child = _spawn_loop(pair, tmp_path, "wait")
        pair.run(pair.server, "ip", "link", "del", pair.server_if)  # takes client_if along
        out, _ = child.communicate(timeout=TIMEOUT)
        assert out.splitlines() == [f"afxdp: interface {pair.client_if} disappeared", "native []"]
        assert not [n for n in pair.links() if is_mirror_name(n)]
        assert pair.xdp_links() == []


def _capture_around(
    pair: NsPair, tmp: Path, traffic: Callable[[], None], settings: dict[str, object]
) -> tuple[list[tuple[bytes, int]], dict[str, object]]:
    capture = start_capture(pair, tmp, settings)
    ready(capture)
    traffic()
    stats, _ = finish(capture)
    return read_records(tmp / "xsk.bin"), stats


@pytest.mark.integration
@needs_root
def test_filter_runs_at_the_mirror_and_snaplen_in_user_space(tmp_path: Path) -> None:
    with ns_pair() as pair:

        def traffic() -> None:
            assert udp_exchange(pair, 30) == 30
            pair.python(pair.client, _UDP_TO, pair.server_ip, "9", "10")  # filtered out

        frames, stats = _capture_around(
            pair, tmp_path, traffic, {"bpf": "udp dst port 9999", "snaplen": 42}
        )
    assert len(frames) == 30 and stats["received"] == 30
    assert all(len(data) == 42 and wirelen > 42 for data, wirelen in frames)  # up to UDP
    assert stats["bytes"] == 30 * 42


_UDP_TO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b"pilotfish %d" % i, (sys.argv[1], int(sys.argv[2])))
"""


@pytest.mark.integration
@needs_root
def test_two_interfaces_are_mirrored_at_once(tmp_path: Path) -> None:
    with ns_pair() as pair:
        pair.run(pair.client, "ip", "link", "set", "lo", "mtu", "1500")

        def traffic() -> None:
            assert udp_exchange(pair, 20) == 20
            pair.python(pair.client, _UDP_TO, "127.0.0.1", "9999", "15")

        frames, stats = _capture_around(
            pair,
            tmp_path,
            traffic,
            {"interfaces": [pair.client_if, "lo"], "bpf": "udp dst port 9999"},
        )
        assert_clean(pair)
    to_server = [d for d, _ in frames if d[30:34] == socket.inet_aton(pair.server_ip)]
    to_lo = [d for d, _ in frames if d[30:34] == socket.inet_aton("127.0.0.1")]
    assert len(to_server) == 20  # leaves through the veth: its egress
    assert len(to_lo) == 30  # loopback: seen on lo's egress and again on its ingress
    assert isinstance(stats["extra"], dict) and stats["extra"]["mirrors"].count("pfx") == 2


def test_declines_a_bridge_with_the_reason(tmp_path: Path) -> None:
    """A bridge's tc hooks miss forwarded frames: AF_XDP must not pretend to capture them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a bridge")
    name = "pfbrx" + os.urandom(2).hex()
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        src = AfXdpSource(CaptureOptions(interfaces=[name]))
        with pytest.raises(SourceUnavailable, match="is a bridge"):
            src.open()
        assert (
            subprocess.run(
                ["ip", "link", "show", "pfx" + str(socket.if_nametoindex(name)) + "a"],
                capture_output=True,
            ).returncode
            != 0
        )
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)
