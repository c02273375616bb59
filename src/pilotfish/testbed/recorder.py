"""Recording testbed traffic to a pcap file with tcpdump, started and stopped by PID.

`start_tcpdump` runs `tcpdump -i IFACE -w FILE -s 0 -B 65536` in the root namespace (on
the host side of a pod's veth) as a tracked testbed process and waits, bounded, until it
reports that it is listening.  `stop_tcpdump` sends SIGINT to that PID, waits for tcpdump to
flush and exit, and returns its own counters (captured / received by filter / dropped by
kernel) parsed from its closing lines; lines it does not understand are ignored.  It waits
SETTLE_S before the signal so the last partly filled ring block reaches the file.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.netns import Testbed

READY_S: Final = 5.0
STOP_S: Final = 15.0
SETTLE_S: Final = 1.5
KERNEL_BUFFER_KIB: Final = 65536
_COUNTER_RE: Final = re.compile(r"(\d+) packets? (captured|received by filter|dropped by kernel)")


@dataclass(frozen=True)
class CaptureStats:
    captured: int
    received: int
    dropped: int


@dataclass(frozen=True)
class Recording:
    proc: subprocess.Popen[bytes]
    path: Path
    log: Path


def start_tcpdump(
    testbed: Testbed, iface: str, path: Path, bpf_filter: str = "", ready_s: float = READY_S
) -> Recording:
    """Start recording `iface` into `path`; returns once tcpdump is listening."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_name(path.name + ".tcpdump.log")
    argv = ["tcpdump", "-i", iface, "-w", str(path), "-s", "0", "-B", str(KERNEL_BUFFER_KIB)]
    argv += ["-n", "-Z", "root"]  # keep the file owned by the caller, not tcpdump's user
    if bpf_filter:
        argv.append(bpf_filter)
    with log.open("wb") as out:
        proc = testbed.spawn_host(argv, stdout=subprocess.DEVNULL, stderr=out)
    deadline = time.monotonic() + ready_s
    while b"listening on" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            testbed.stop(proc)
            text = log.read_text(errors="replace")
            raise TestbedError(f"tcpdump on {iface} did not start: {text[-500:]}")
        time.sleep(0.02)
    return Recording(proc, path, log)


def stop_tcpdump(
    testbed: Testbed, rec: Recording, settle_s: float = SETTLE_S, wait_s: float = STOP_S
) -> CaptureStats:
    """SIGINT tcpdump by PID, wait for it to flush and exit, and return its counters.

    The kernel hands tcpdump its ring in blocks that are released at the latest after the
    block timeout (1 s); packets in a block not yet released when tcpdump stops are lost,
    so it first waits `settle_s` after the traffic ended.
    """
    if rec.proc.poll() is None:
        time.sleep(settle_s)
        rec.proc.send_signal(signal.SIGINT)
        try:
            rec.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            testbed.stop(rec.proc)
    testbed.stop(rec.proc)  # reaps and forgets it
    stats = parse_counters(rec.log.read_text(errors="replace"))
    rec.log.unlink(missing_ok=True)
    return stats


def parse_counters(text: str) -> CaptureStats:
    """tcpdump's closing "N packets captured / received by filter / dropped by kernel"."""
    found = {kind: int(n) for n, kind in _COUNTER_RE.findall(text)}
    return CaptureStats(
        found.get("captured", 0),
        found.get("received by filter", 0),
        found.get("dropped by kernel", 0),
    )
