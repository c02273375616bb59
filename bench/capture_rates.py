"""Live capture at stepped rates: pilotfish's backends beside tcpdump, in the same run.

A namespace of our own sends UDP frames (a fixed count per step) over a veth pair: paced by
tcpreplay at each set rate, and in a last step ("max") by trafgen with no rate limit, as
fast as the veth path goes with that capturer listening.  The frames cycle through FLOWS UDP
flows (source ports), so a fanout group has flows to split; each capturer listens on the
host end and writes to /dev/null (capture-only mode).  For every tool and rate: packets
offered, the rate the sender achieved (frames it put on the wire / wall seconds of its send
loop, as the sender reports them), what the host end's own counters say arrived
(rx_packets; the cross-check of the offered count), received, dropped, the capturer's CPU
seconds per million packets (its own and its children's user+system time from the moment it
listens, as wait4 reports it: interpreter start-up is not a per-packet cost), the CPU the
whole machine spent over the send beyond what the sender alone spent at the same step
("added system": kernel paths such as the taps or a mirror, wherever they are charged, plus
the capturer; /proc/stat busy time, so other load on the machine shows up here), and the
highest rate with zero drops.  A "no capturer" row per step is the sender alone: the veth
path's own speed, and its busy CPU (the pacing sender spins between frames).  The PF_RING
row runs the binding on the testbed's stand-in library (a plain AF_PACKET socket read with
recvmmsg), since this machine has no PF_RING: it is labelled STAND-IN and says nothing about
PF_RING's own speed.

Bounded: each step sends STEP_PACKETS frames and is cut after STEP_TIMEOUT_S; everything the
bench creates (namespace, veth, processes, by PID) is removed at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import clean_up_to, table, wait_for_output
from pilotfish.capture.base import LINKTYPE_ETHERNET
from pilotfish.capture.pcapfile import PcapWriter
from pilotfish.capture.pfring import ENV_LIBRARY
from pilotfish.testbed.pfring_standin import StandinError, build_standin

STEP_PACKETS = 200_000
STEP_TIMEOUT_S = 15.0
MAX_RATE = 0  # a step with no rate limit
RATES_PPS = (50_000, 100_000, 200_000, 300_000, 450_000, MAX_RATE)
SIZES = (64, 1514)
SETTLE_S = 1.0
FLOWS = 64  # UDP flows (source ports) the frames of a step cycle through, in turn
FIRST_PORT = 40000
READY_SETTLE_S = 0.3  # after the capturer says it listens
NO_CAPTURER = "no capturer"


@dataclass
class Send:
    """What trafgen says it did: frames put on the wire and the wall time of its send loop."""

    sent: int
    seconds: float

    @property
    def achieved(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Step:
    tool: str
    size: int
    rate: int
    offered: int
    received: int
    cpu_s: float  # the capturer's own (and its children's) CPU seconds
    arrived: int = 0  # rx_packets growth of the host end during the step
    send: Send | None = None
    system_s: float = 0.0  # busy CPU seconds of the whole machine over the send

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


def udp_frame(size: int, flow: int = 0) -> bytes:
    """One Ethernet/IPv4/UDP frame of `size` bytes, 192.0.2.1:(FIRST_PORT + flow) ->
    192.0.2.2:9 (UDP checksum 0: none)."""
    payload = b"A" * (size - 42)  # Ethernet 14 + IPv4 20 + UDP 8
    udp = struct.pack(">HHHH", FIRST_PORT + flow, 9, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, *_ADDRESSES)
    ip = ip[:10] + struct.pack(">H", _ip_checksum(ip)) + ip[12:]
    return bytes.fromhex("0200000000020200000000010800") + ip + udp


_ADDRESSES = (bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class Sender:
    """The FLOWS frames of one size, as a trafgen configuration and as a pcap file."""

    trafgen_conf: Path
    pcap: Path


def _sender(size: int, directory: Path) -> Sender:
    frames = [udp_frame(size, flow) for flow in range(FLOWS)]
    conf = directory / f"udp{size}.cfg"
    conf.write_text(
        "".join("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n" for frame in frames)
    )
    pcap = directory / f"udp{size}.pcap"
    with PcapWriter(pcap, LINKTYPE_ETHERNET) as writer:
        for frame in frames:
            writer.write(0.0, frame)
    return Sender(conf, pcap)


def _send(ns: str, peer: str, sender: Sender, rate: int) -> Send:
    """STEP_PACKETS frames from the namespace's end: paced by tcpreplay at `rate` pps, or
    as fast as trafgen's mmap TX ring goes (MAX_RATE).  trafgen's own -b limit is not used:
    it stops pacing from about 250,000 pps up and sends at full speed."""
    run = ["ip", "netns", "exec", ns]
    if rate == MAX_RATE:
        argv = [*run, "trafgen", "--dev", peer, "--conf", str(sender.trafgen_conf)]
        argv += ["-n", str(STEP_PACKETS), "-P", "1", "-q"]  # -q: through the qdisc path
    else:
        argv = [*run, "tcpreplay", "-i", peer, "--preload-pcap", f"--loop={STEP_PACKETS // FLOWS}"]
        argv += [f"--pps={rate}", "-q", str(sender.pcap)]
    done = subprocess.run(
        argv, check=True, timeout=STEP_TIMEOUT_S + 30, capture_output=True, text=True
    )
    return parse_sender_report(done.stdout + done.stderr)


def parse_sender_report(text: str) -> Send:
    """Frames sent and seconds of the send loop, from trafgen's or tcpreplay's closing report
    (trafgen's "N sec, M usec on CPU0" is the wall time of its send loop)."""
    replay = re.search(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds", text)
    if replay is not None:
        return Send(int(replay.group(1)), float(replay.group(2)))
    sent = re.search(r"(\d+) packets outgoing", text)
    took = re.search(r"(\d+) sec, (\d+) usec on CPU", text)
    if sent is None or took is None:
        raise RuntimeError(f"sender said no totals: {text[-300:]!r}")
    return Send(int(sent.group(1)), int(took.group(1)) + int(took.group(2)) / 1e6)


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
    sender: Sender,
    size: int,
    rate: int,
) -> Step:
    ns, host, peer = link
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    reaped = False
    try:
        head = wait_for_output(proc, b"listening on" if tool.startswith("tcpdump") else b"using")
        time.sleep(READY_SETTLE_S)
        startup = _process_cpu(proc.pid)  # interpreter start and opening: not per packet
        before = _rx_packets(host)
        busy = _busy_cpu()
        send = _send(ns, peer, sender, rate)
        system = _busy_cpu() - busy
        time.sleep(SETTLE_S)
        arrived = _rx_packets(host) - before
        proc.send_signal(signal.SIGINT)
        err = _read_to_end(proc, STEP_TIMEOUT_S)
        cpu = _wait_cpu(proc) - startup
        reaped = True
    finally:
        if not reaped:
            proc.kill()
            proc.wait()
    report = (head + err).decode(errors="replace")
    received = _received(tool, report)
    return Step(tool, size, rate, STEP_PACKETS, received, cpu, arrived, send, system)


def _read_to_end(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The rest of proc's stderr, up to its end (the process closing it) or `timeout`."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _wait_cpu(proc: subprocess.Popen[bytes]) -> float:
    """Reap proc and return its CPU seconds, its reaped children's included (wait4)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _busy_cpu() -> float:
    """Non-idle CPU seconds of the whole machine so far (all CPUs, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds a running process and its running children have used (/proc)."""
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return total
    return total + sum(_process_cpu(int(child)) for child in children)


def run(rates: Sequence[int] = RATES_PPS, sizes: Sequence[int] = SIZES, only: str = "") -> str:
    """The table; `only` keeps the capturers whose name contains it."""
    if os.geteuid() != 0:
        return "capture rates: needs root (network namespaces, raw sockets)"
    steps: list[Step] = []
    with _link() as link, tempfile.TemporaryDirectory() as tmp:
        host = link[1]
        try:
            standin: Path | None = build_standin(Path(tmp))
        except StandinError:
            standin = None
        env = {**os.environ, ENV_LIBRARY: str(standin)} if standin else dict(os.environ)
        for size in sizes:
            sender = _sender(size, Path(tmp))
            for rate in rates:
                steps.append(_alone(link, sender, size, rate))
                for tool, argv in _capturers(host, standin).items():
                    if only in tool:
                        steps.append(_step(tool, argv, env, link, sender, size, rate))
    return render(steps, sizes)


def _alone(link: tuple[str, str, str], sender: Sender, size: int, rate: int) -> Step:
    """The sender with nobody listening: the veth path's own speed at this step."""
    ns, host, peer = link
    before = _rx_packets(host)
    busy = _busy_cpu()
    send = _send(ns, peer, sender, rate)
    system = _busy_cpu() - busy
    time.sleep(SETTLE_S / 4)
    arrived = _rx_packets(host) - before
    return Step(NO_CAPTURER, size, rate, STEP_PACKETS, 0, 0.0, arrived, send, system)


def render(steps: Sequence[Step], sizes: Sequence[int]) -> str:
    """The table of `steps`, one block per frame size, tools in the order they first ran."""
    rows = []
    tools = list(dict.fromkeys(s.tool for s in steps))
    for size in sizes:
        for tool in tools:
            mine = [s for s in steps if s.tool == tool and s.size == size]
            ordered = sorted(mine, key=lambda s: s.rate or float("inf"))
            clean = clean_up_to([(_rate_key(s), s.dropped == 0) for s in ordered])
            for s in ordered:
                alone = next(
                    (
                        a
                        for a in steps
                        if a.tool == NO_CAPTURER and (a.size, a.rate) == (size, s.rate)
                    ),
                    None,
                )
                rows.append(_row(s, clean, alone))
    header = [
        "capturer",
        "frame B",
        "rate pps",
        "achieved pps",
        "offered",
        "veth rx",
        "received",
        "dropped",
        "cpu s/Mpkt",
        "added system cpu s/Mpkt",
        "zero drops up to pps",
    ]
    return table(
        f"capture rates: {STEP_PACKETS:,} UDP frames per step over a veth pair "
        '("max": trafgen unthrottled, other rates paced by tcpreplay; a zero-drop rate counts what the sender achieved where it fell short of the set rate)',
        header,
        rows,
    )


def _rate_key(step: Step) -> float:
    """The rate a step stands for: what the sender achieved, when unthrottled or when it fell
    short of its set rate by more than 1 % (a capturer's kernel path slows the sender, since
    the veth delivers in the sender's context); else the set rate."""
    achieved = step.send.achieved if step.send is not None else 0.0
    if step.rate == MAX_RATE or achieved < 0.99 * step.rate:
        return achieved
    return float(step.rate)


def _row(s: Step, clean: float | None, base: Step | None) -> list[object]:
    alone = s.tool == NO_CAPTURER
    per_mpkt = 1e6 / (s.offered if alone else (s.received or 1))
    added = s.system_s - (base.system_s if base is not None and not alone else 0.0)
    return [
        s.tool,
        s.size,
        "max" if s.rate == MAX_RATE else f"{s.rate:,}",
        f"{s.send.achieved:,.0f}" if s.send is not None else "-",
        s.offered,
        s.arrived,
        "-" if alone else s.received,
        "-" if alone else s.dropped,
        "-" if alone else f"{s.cpu_s * per_mpkt:.2f}",
        f"{added * per_mpkt:.2f}",
        "-" if alone else (f"{clean:,.0f}" if clean else "-"),
    ]


if __name__ == "__main__":
    print(run())
