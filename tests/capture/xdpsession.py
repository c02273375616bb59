"""The AF_XDP source in a child process of the client namespace, and what checks its work.

`start_capture` runs `AfXdpSource` in the client namespace of an `NsPair` and writes every
frame to tmp/xsk.bin until SIGTERM; `run_session` serves a file over HTTP from the server
namespace and fetches it `requests` times while both that capture and tcpdump record the
client's interface; `assert_clean` checks nothing of the mirror is left behind.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

from pilotfish.capture.mirror import is_mirror_name
from tests.capture.test_mirror import TIMEOUT, NsPair

CAPTURE = """
import json, signal, struct, sys
from pilotfish.capture.afxdp import AfXdpSource
from pilotfish.capture.base import CaptureOptions
out, options, kwargs, on_term = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
src = AfXdpSource(CaptureOptions(**options), **kwargs)
src.open()
stopping = []
signal.signal(signal.SIGTERM, lambda *a: src.close() if on_term == "close" else stopping.append(1))
print(json.dumps(src.stats().extra), flush=True)
with open(out, "wb") as f:
    for batch in src.batches():
        for ts, linktype, data, wirelen in batch:
            assert linktype == 1 and wirelen >= len(data) and ts > 0
            f.write(struct.pack("<II", len(data), wirelen) + data)
        if stopping and not batch:
            src.close()  # drained: the last poll timed out with nothing pending
st = src.stats()
src.close()
print(json.dumps({"received": st.received, "bytes": st.bytes, "dropped": st.dropped,
                  "if_dropped": st.if_dropped, "reason": st.reason, "extra": st.extra}), flush=True)
"""


CLIENT = """
import http.client, sys
ok = 0
for i in range(int(sys.argv[2])):
    conn = http.client.HTTPConnection(sys.argv[1], 8080, timeout=5)
    try:
        conn.request("GET", f"/hello.txt?n={i}")
        resp = conn.getresponse()
        ok += resp.status == 200 and len(resp.read()) == int(sys.argv[3])
    except OSError:
        pass
    finally:
        conn.close()
print(ok)
"""

WAIT_PORT = """
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection((sys.argv[1], 8080), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("server did not start")
"""


def start_capture(
    pair: NsPair, tmp: Path, settings: dict[str, object] | None = None, *, on_term: str = "drain"
) -> subprocess.Popen[str]:
    """A child capturing in the client namespace into tmp/xsk.bin until SIGTERM.

    `settings` are CaptureOptions fields, except mode/mount_bpffs which go to AfXdpSource.
    """
    options: dict[str, object] = {"interfaces": [pair.client_if], **(settings or {})}
    source_kw: dict[str, object] = {
        k: options.pop(k) for k in ("mode", "mount_bpffs") if k in options
    }
    source_kw["state_dir"] = str(tmp / "state")
    cmd = ["ip", "netns", "exec", pair.client, sys.executable, "-c", CAPTURE, str(tmp / "xsk.bin")]
    return subprocess.Popen(
        [*cmd, json.dumps(options), json.dumps(source_kw), on_term],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ready(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"capture child failed: {proc.communicate(timeout=TIMEOUT)[1]}")
    extra: dict[str, object] = json.loads(line)
    return extra


def finish(proc: subprocess.Popen[str]) -> tuple[dict[str, object], str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result, err


def read_records(path: Path) -> list[tuple[bytes, int]]:
    """(data, wire length) of every frame the capture child wrote."""
    data, frames, off = path.read_bytes(), [], 0
    while off < len(data):
        n, wirelen = struct.unpack_from("<II", data, off)
        frames.append((data[off + 8 : off + 8 + n], wirelen))
        off += 8 + n
    return frames


def read_pcap(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4, "expected little-endian pcap"
    frames, off = [], 24
    while off + 16 <= len(data):
        incl, orig = struct.unpack_from("<II", data, off + 8)
        assert incl == orig
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


def assert_clean(pair: NsPair) -> None:
    assert not [n for n in pair.links() if is_mirror_name(n)]
    assert pair.filter_prefs("ingress") == set() == pair.filter_prefs("egress")
    assert "clsact" not in pair.qdisc_kinds()
    assert pair.xdp_links() == []
    if shutil.which("xdp-loader"):
        status = pair.run(pair.client, "xdp-loader", "status", check=False)
        assert "xsk_def_prog" not in status and "pfx" not in status


def run_session(
    pair: NsPair, tmp: Path, mode: str, mount: bool, body: bytes, requests: int
) -> tuple[list[bytes], list[bytes], dict[str, object], dict[str, object]]:
    """Serve `body` from the server namespace, capture while `requests` GETs fetch it.

    Returns (frames we captured, frames tcpdump recorded, extra at open, final stats).
    """
    www = tmp / "www"
    www.mkdir()
    (www / "hello.txt").write_bytes(body)
    server_cmd = [sys.executable, "-m", "http.server", "8080", "--bind", pair.server_ip]
    server = subprocess.Popen(
        ["ip", "netns", "exec", pair.server, *server_cmd, "--directory", str(www)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pcap = tmp / "tcpdump.pcap"
    try:
        pair.python(pair.client, WAIT_PORT, pair.server_ip)
        capture = start_capture(pair, tmp, {"mode": mode, "mount_bpffs": mount})
        extra = ready(capture)
        dump = ["tcpdump", "-i", pair.client_if, "-nU", "--immediate-mode", "-B", "65536"]
        tcpdump = subprocess.Popen(
            ["ip", "netns", "exec", pair.client, *dump, "-w", str(pcap)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tcpdump.stderr is not None
        assert "listening on" in tcpdump.stderr.readline()
        answered = pair.python(pair.client, CLIENT, pair.server_ip, str(requests), str(len(body)))
        assert int(answered) == requests  # passive: every request was answered
        # let both captures drain, then stop tcpdump and the capture
        pair.python(pair.client, "import time; time.sleep(0.5)")
        tcpdump.send_signal(signal.SIGINT)
        tcpdump_report = tcpdump.communicate(timeout=TIMEOUT)[1].splitlines()
        assert "0 packets dropped by kernel" in tcpdump_report  # the oracle saw everything
        stats, _ = finish(capture)
    finally:
        server.kill()
        server.wait(timeout=TIMEOUT)
    records = read_records(tmp / "xsk.bin")
    assert all(wirelen == len(data) for data, wirelen in records)  # no snaplen: whole frames
    return [data for data, _ in records], read_pcap(pcap), extra, stats
