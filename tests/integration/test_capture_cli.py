"""`pilotfish capture` as a user runs it, on real traffic in a testbed.

nginx in one pod, curl in another; pilotfish captures the client's link with each backend
that can run here (AF_PACKET; AF_XDP; PF_RING through the test's stand-in library) and must
print exactly the requests made, stop on count, duration and signals with its stats, fall
back with the documented reasons, and split flows between workers without losing or
duplicating any.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilotfish.capture.pcapfile import PcapFileSource
from pilotfish.testbed.netns import Pod, Testbed
from pilotfish.testbed.pfring_standin import build_standin
from pilotfish.testbed.services import start_nginx

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

PATHS = ["/", "/api/v1/items", "/missing", "/redirect"]
EXPECTED = Counter(
    {
        ("GET", "/", 200): 3,
        ("GET", "/api/v1/items", 200): 3,
        ("GET", "/missing", 404): 3,
        ("GET", "/redirect", 301): 3,
    }
)


class Bed:
    def __init__(self, tb: Testbed, client: Pod, web: Pod) -> None:
        self.tb, self.client, self.web = tb, client, web

    def curl_all(self) -> None:
        for _ in range(3):
            for path in PATHS:  # a new connection each time: 12 flows
                r = self.tb.run(
                    self.client,
                    [
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "--max-time",
                        "5",
                        f"http://{self.web.ip}{path}",
                    ],
                )
                assert r.returncode == 0


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    with Testbed() as tb:
        client, web = tb.add_pod("client"), tb.add_pod("web")
        start_nginx(tb, web)
        yield Bed(tb, client, web)


def start(
    *args: str, env: dict[str, str] | None = None, wrap: list[str] | None = None
) -> subprocess.Popen[str]:
    argv = [*(wrap or []), sys.executable, "-m", "pilotfish", "capture", *args]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_open(proc: subprocess.Popen[str], seconds: float = 20.0) -> str:
    """Wait until the capture says which backend runs (it is open then); returns the stderr
    read so far, which the caller puts in front of what communicate() returns."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    head = b""
    deadline = time.monotonic() + seconds
    while b"capture: using" not in head or not head.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, f"capture did not open within {seconds}s: {head.decode()}"
        ready, _, _ = select.select([fd], [], [], left)
        chunk = os.read(fd, 4096) if ready else b""
        assert chunk or not ready, f"capture ended before opening: {head.decode()}"
        head += chunk
    return head.decode()


def http(stdout: str) -> Counter[tuple[str, str, Any]]:
    docs = [json.loads(line) for line in stdout.splitlines()]
    return Counter((d["method"], d["path"], d["status"]) for d in docs if d["protocol"] == "http")


@pytest.mark.parametrize("backend", ["afpacket", "afxdp", "pfring"])
def test_each_backend_prints_exactly_the_requests(bed: Bed, backend: str, tmp_path: Path) -> None:
    env = {}
    if backend == "pfring":
        env["PILOTFISH_PFRING_LIBRARY"] = str(build_standin(tmp_path))
    proc = start(
        "-i", bed.client.veth, "--capture", backend, "--format", "jsonl", "--duration", "4", env=env
    )
    head = wait_open(proc)
    bed.curl_all()
    out, err = proc.communicate(timeout=30)
    err = head + err
    assert proc.returncode == 0, err
    assert f"using {backend} on {bed.client.veth}" in err
    assert http(out) == EXPECTED
    assert "dropped=0" in err and "entries" in err


@pytest.mark.parametrize("backend", ["afpacket", "afxdp", "pfring"])
def test_each_backend_writes_a_file_that_reads_back_the_requests(
    bed: Bed, backend: str, tmp_path: Path
) -> None:
    """-w without a count: each backend writes pcap records itself (no frame objects)."""
    env = {}
    if backend == "pfring":
        env["PILOTFISH_PFRING_LIBRARY"] = str(build_standin(tmp_path))
    path = tmp_path / f"{backend}.pcap"
    proc = start(
        "-i", bed.client.veth, "--capture", backend, "-w", str(path), "--duration", "4", env=env
    )
    head = wait_open(proc)
    bed.curl_all()
    _, err = proc.communicate(timeout=30)
    err = head + err
    assert proc.returncode == 0, err
    written = int(err.split(" packets written")[0].rsplit(maxsplit=1)[-1])
    read = subprocess.run(
        [sys.executable, "-m", "pilotfish", "read", str(path), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert http(read.stdout) == EXPECTED
    assert f"{written} packets" in read.stderr  # every record of the file is a whole frame


def test_count_stops_after_exactly_n_packets_written(bed: Bed, tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    proc = start("-i", bed.client.veth, "--capture", "afpacket", "-c", "25", "-w", str(path))
    head = wait_open(proc)
    bed.curl_all()
    _, err = proc.communicate(timeout=30)
    err = head + err
    assert proc.returncode == 0, err
    source = PcapFileSource(path)
    source.open()
    frames = [f for batch in source.batches() for f in batch]
    source.close()
    assert len(frames) == 25
    assert "25 packets written" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_cleanly_with_stats(bed: Bed, sig: signal.Signals) -> None:
    proc = start("-i", bed.client.veth, "--format", "jsonl")
    head = wait_open(proc)
    bed.curl_all()
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    err = head + err
    assert proc.returncode == 0, err
    assert " received=" in err and "dropped=0" in err  # best picks AF_XDP on a veth
    assert http(out) == EXPECTED


def test_forced_backend_that_cannot_run_exits_2_with_the_reason(bed: Bed) -> None:
    proc = start(
        "-i",
        bed.client.veth,
        "--capture",
        "pfring",
        "--duration",
        "1",
        env={"PILOTFISH_PFRING_LIBRARY": ""},
    )
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "libpfring not found" in err


def test_fallback_reasons_then_the_backend_that_runs() -> None:
    proc = start("-i", "lo", "--duration", "1")
    _, err = proc.communicate(timeout=20)
    assert "pfring declined: libpfring not found" in err
    assert "afxdp declined: lo: MTU 65536 too large for UMEM frame size 4096" in err
    assert "using afpacket on lo" in err


def test_missing_capability_is_named(bed: Bed) -> None:
    drop = ["capsh", "--drop=cap_net_raw,cap_net_admin,cap_bpf,cap_sys_admin", "--"]
    proc = subprocess.run(
        [
            *drop,
            "-c",
            f"{sys.executable} -m pilotfish capture -i {bed.client.veth} "
            "--capture afpacket --duration 1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "needs CAP_NET_RAW" in proc.stderr


def test_two_workers_see_every_flow_whole_exactly_once(bed: Bed) -> None:
    proc = start(
        "-i",
        bed.client.veth,
        "--capture",
        "afpacket",
        "--workers",
        "2",
        "--format",
        "jsonl",
        "--duration",
        "5",
    )
    head = wait_open(proc)
    time.sleep(1.0)  # the first worker announced the backend; let the other join too
    bed.curl_all()
    out, err = proc.communicate(timeout=30)
    err = head + err
    assert proc.returncode == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert http(out) == EXPECTED
    streams = Counter(d["src"]["port"] for d in docs if d["protocol"] == "http")
    assert all(n == 1 for n in streams.values())  # one entry per connection: none split
    assert err.count("capture afpacket: received=") == 2
