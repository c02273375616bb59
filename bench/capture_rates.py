"""Live capture at stepped rates: pilotfish's backends beside tcpdump, in the same run.

A namespace of our own sends UDP frames with trafgen (a fixed count per step, at a set rate)
over a veth pair; each capturer listens on the host end and writes to /dev/null
(capture-only mode).  For every tool and rate: packets offered, what the host end's own
counters say arrived (rx_packets; the cross-check of the offered count), received, dropped,
CPU seconds per million packets (from the moment the capturer listens: interpreter start-up
is not a per-packet cost), and the highest rate with zero drops.  The PF_RING row runs
the binding on the testbed's stand-in library (a plain AF_PACKET socket, one recvfrom per
frame), since this machine has no PF_RING: it is labelled STAND-IN and says nothing about
PF_RING's own speed.

Bounded: each step sends STEP_PACKETS frames and is cut after STEP_TIMEOUT_S; everything the
bench creates (namespace, veth, processes, by PID) is removed at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import clean_up_to, table, wait_for_output
from pilotfish.capture.pfring import ENV_LIBRARY
from pilotfish.testbed.pfring_standin import StandinError, build_standin

STEP_PACKETS = 200_000
STEP_TIMEOUT_S = 15.0
RATES_PPS = (50_000, 100_000, 200_000, 300_000, 450_000)
SIZES = (64, 1514)
SETTLE_S = 1.0
READY_SETTLE_S = 0.3  # after the capturer says it listens


@dataclass
class Step:
    tool: str
    size: int
    rate: int
    offered: int
    received: int
    cpu_s: float
    arrived: int = 0  # rx_packets growth of the host end during the step

    @property
    def dropped(self) -> int:
        return max(0, self.offered - self.received)


@contextmanager
def _link() -> Iterator[tuple[str, str, str]]:
    tag = secrets.token_hex(2)
    ns, host, peer = f"pfbench{tag}", f"pfbh{tag}", f"pfbp{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "link", "add", host, "type", "veth", "peer", "name", peer], check=True
        )
        subprocess.run(["ip", "link", "set", peer, "netns", ns], check=True)
        for argv in (  # IPv6 off: no router or multicast chatter in the counters
            ["sysctl", "-qw", f"net.ipv6.conf.{host}.disable_ipv6=1"],
            ["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{peer}.disable_ipv6=1"],
            ["ip", "link", "set", host, "up"],
            ["ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"],
        ):
            subprocess.run(argv, check=True)
        yield ns, host, peer
    finally:
        subprocess.run(["ip", "link", "del", host], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _trafgen_conf(size: int, directory: Path) -> Path:
    payload = size - 42  # Ethernet 14 + IPv4 20 + UDP 8
    conf = directory / f"udp{size}.cfg"
    conf.write_text(
        "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01, type=0x0800),\n"
        "  ipv4(saddr=192.0.2.1, daddr=192.0.2.2, ttl=64),\n"
        f"  udp(sport=40000, dport=9), fill(0x41, {payload}) }}\n"
    )
    return conf


def _send(ns: str, peer: str, conf: Path, rate: int) -> None:
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "trafgen",
            "--dev",
            peer,
            "--conf",
            str(conf),
            "-n",
            str(STEP_PACKETS),
            "-b",
            f"{rate}pps",
            "-P",
            "1",
            "-q",
            "-C",
        ],
        check=True,
        timeout=STEP_TIMEOUT_S + 30,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _capturers(host: str, standin: Path | None) -> dict[str, list[str]]:
    py = [sys.executable, "-m", "pilotfish", "capture", "-i", host, "-w", "/dev/null"]
    found = {
        "tcpdump -w /dev/null": ["tcpdump", "-i", host, "-w", "/dev/null", "-n", "udp"],
        "tcpdump -B 65536": ["tcpdump", "-i", host, "-B", "65536", "-w", "/dev/null", "-n", "udp"],
        "pilotfish afpacket": [*py, "--capture", "afpacket", "--bpf", "udp"],
        "pilotfish afpacket x2": [*py, "--capture", "afpacket", "--bpf", "udp", "--workers", "2"],
        "pilotfish afxdp": [*py, "--capture", "afxdp", "--bpf", "udp"],
    }
    if standin is not None:
        found[PFRING_STANDIN] = [*py, "--capture", "pfring", "--bpf", "udp"]
    return found


PFRING_STANDIN = "pilotfish pfring STAND-IN"


def _rx_packets(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/rx_packets").read_text())


def _received(tool: str, err: str) -> int:
    if tool.startswith("tcpdump"):
        m = re.search(r"(\d+) packets captured", err)
        return int(m.group(1)) if m else 0
    return sum(int(n) for n in re.findall(r" received=(\d+)", err))


def _step(
    tool: str,
    argv: Sequence[str],
    env: dict[str, str],
    link: tuple[str, str, str],
    conf: Path,
    size: int,
    rate: int,
) -> Step:
    ns, host, peer = link
    start = _children_cpu()
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        head = wait_for_output(proc, b"listening on" if tool.startswith("tcpdump") else b"using")
        startup = _process_cpu(proc.pid)  # interpreter start and opening: not per packet
        time.sleep(READY_SETTLE_S)
        before = _rx_packets(host)
        _send(ns, peer, conf, rate)
        time.sleep(SETTLE_S)
        arrived = _rx_packets(host) - before
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=STEP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cpu = _children_cpu() - start - startup  # still includes the sender: see `run`
    report = (head + (err or b"")).decode(errors="replace")
    return Step(tool, size, rate, STEP_PACKETS, _received(tool, report), cpu, arrived)


def _children_cpu() -> float:
    """CPU seconds of every waited-for child so far."""
    t = os.times()
    return t.children_user + t.children_system


def _process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (utime + stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(rates: Sequence[int] = RATES_PPS, sizes: Sequence[int] = SIZES, only: str = "") -> str:
    """The table; `only` keeps the capturers whose name contains it."""
    if os.geteuid() != 0:
        return "capture rates: needs root (network namespaces, raw sockets)"
    steps: list[Step] = []
    with _link() as link, tempfile.TemporaryDirectory() as tmp:
        ns, host, peer = link
        try:
            standin: Path | None = build_standin(Path(tmp))
        except StandinError:
            standin = None
        env = {**os.environ, ENV_LIBRARY: str(standin)} if standin else dict(os.environ)
        for size in sizes:
            conf = _trafgen_conf(size, Path(tmp))
            for rate in rates:
                # the sender's own CPU, measured alone, is subtracted from each step
                before = _children_cpu()
                _send(ns, peer, conf, rate)
                sender = _children_cpu() - before
                for tool, argv in _capturers(host, standin).items():
                    if only not in tool:
                        continue
                    step = _step(tool, argv, env, link, conf, size, rate)
                    step.cpu_s = max(0.0, step.cpu_s - sender)
                    steps.append(step)
    rows = []
    tools = list(dict.fromkeys(s.tool for s in steps))
    for size in sizes:
        for tool in tools:
            mine = [s for s in steps if s.tool == tool and s.size == size]
            clean = clean_up_to([(s.rate, s.dropped == 0) for s in mine])
            for s in mine:
                rows.append(
                    [
                        tool,
                        size,
                        f"{s.rate:,}",
                        s.offered,
                        s.arrived,
                        s.received,
                        s.dropped,
                        f"{s.cpu_s / (s.received or 1) * 1e6:.2f}",
                        f"{clean:,.0f}" if clean else "-",
                    ]
                )
    header = [
        "capturer",
        "frame B",
        "rate pps",
        "offered",
        "veth rx",
        "received",
        "dropped",
        "cpu s/Mpkt",
        "zero drops up to pps",
    ]
    return table(
        f"capture rates: {STEP_PACKETS:,} UDP frames per step over a veth pair", header, rows
    )


if __name__ == "__main__":
    print(run())
