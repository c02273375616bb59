"""Test helpers for live capture: a private namespace behind a veth pair, bounded traffic into it,
frame parsing, and a minimal pcap reader (to compare with tcpdump).

Everything a test creates has a random suffix and is removed on exit; traffic goes only
between the namespace and the host side of its own veth, with static neighbours (no ARP) and
IPv6 off (no router or multicast chatter), so the frames on the wire are exactly the test's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pilotfish.capture.base import LINKTYPE_ETHERNET, CaptureStats, RecordSource, Source
from pilotfish.capture.pcapfile import DEFAULT_SNAPLEN, PcapFileSource, PcapWriter
from pilotfish.model import Frame

UDP_PORT = 9999
OTHER_UDP_PORT = 9997
TCP_PORT = 9998
ETH_HEADER = 14
SLL2_HEADER = 20


def have_root() -> bool:
    return os.geteuid() == 0


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@dataclass
class VethNs:
    """A namespace `ns` whose `ns_if` is joined to `host_if` in the test's own namespace."""

    ns: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def in_ns(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *args]


@contextlib.contextmanager
def veth_namespace() -> Iterator[VethNs]:
    suffix = secrets.token_hex(3)
    third, fourth = secrets.randbelow(250) + 1, secrets.randbelow(60) * 4
    env = VethNs(
        ns=f"pfns{suffix}",
        host_if=f"pfh{suffix}",
        ns_if=f"pfn{suffix}",
        host_ip=f"10.211.{third}.{fourth + 1}",
        ns_ip=f"10.211.{third}.{fourth + 2}",
    )
    try:
        _run("ip", "netns", "add", env.ns)
        _run("ip", "link", "add", env.host_if, "type", "veth", "peer", "name", env.ns_if)
        _run("ip", "link", "set", env.ns_if, "netns", env.ns)
        _run("sysctl", "-qw", f"net.ipv6.conf.{env.host_if}.disable_ipv6=1")
        _run(*env.in_ns("sysctl", "-qw", f"net.ipv6.conf.{env.ns_if}.disable_ipv6=1"))
        _run("ip", "addr", "add", f"{env.host_ip}/30", "dev", env.host_if)
        _run("ip", "-n", env.ns, "addr", "add", f"{env.ns_ip}/30", "dev", env.ns_if)
        _run("ip", "-n", env.ns, "link", "set", "lo", "up")
        host_mac = Path(f"/sys/class/net/{env.host_if}/address").read_text().strip()
        ns_mac = subprocess.run(
            env.in_ns("cat", f"/sys/class/net/{env.ns_if}/address"),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        _run("ip", "neigh", "replace", env.ns_ip, "lladdr", ns_mac, "dev", env.host_if,
             "nud", "permanent")  # fmt: skip
        _run("ip", "-n", env.ns, "neigh", "replace", env.host_ip, "lladdr", host_mac,
             "dev", env.ns_if, "nud", "permanent")  # fmt: skip
        _run("ip", "link", "set", env.host_if, "up")
        _run("ip", "-n", env.ns, "link", "set", env.ns_if, "up")
        yield env
    finally:
        for child in env.children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
        subprocess.run(["ip", "link", "del", env.host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", env.ns], capture_output=True, timeout=30)


def udp_payload(seq: int, port: int = UDP_PORT) -> bytes:
    """The datagram number `seq` the sender sends (varied sizes, sequence in front)."""
    size = 16 + (seq * 37) % 1200
    head = b"pf%05d:%05d:" % (port, seq)
    return (head * (size // len(head) + 1))[:size]


def tcp_payload(conn: int, size: int) -> bytes:
    block = (b"conn%02d-" % conn) * 32
    return (block * (size // len(block) + 1))[:size]


_SENDER = """
import socket, sys
sys.path[:0] = {path!r}
from tests.capture.livenet import udp_payload, tcp_payload
host, count, other, tcp_conns, tcp_size, flows = sys.argv[1], *map(int, sys.argv[2:])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
for s in socks:
    s.bind(("0.0.0.0", 0))
for seq in range(count):
    socks[seq % flows].sendto(udp_payload(seq), (host, {udp}))
for seq in range(other):
    socks[0].sendto(udp_payload(seq, {other_port}), (host, {other_port}))
for conn in range(tcp_conns):
    c = socket.create_connection((host, {tcp}), timeout=10)
    c.sendall(tcp_payload(conn, tcp_size))
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    c.close()
"""


def send_traffic(
    env: VethNs,
    count: int = 500,
    other: int = 0,
    tcp_conns: int = 0,
    tcp_size: int = 100_000,
    flows: int = 1,
) -> None:
    """From inside the namespace: `count` datagrams to UDP_PORT over `flows` source ports,
    `other` to OTHER_UDP_PORT, and `tcp_conns` TCP transfers of `tcp_size` bytes."""
    root = str(Path(__file__).resolve().parents[2])
    script = _SENDER.format(
        path=[root, str(Path(root) / "src")],
        udp=UDP_PORT,
        other_port=OTHER_UDP_PORT,
        tcp=TCP_PORT,
    )
    with _host_listeners(env.host_ip):
        subprocess.run(
            env.in_ns(sys.executable, "-c", script, env.host_ip, str(count), str(other),
                      str(tcp_conns), str(tcp_size), str(flows)),
            check=True,
            timeout=60,
        )  # fmt: skip


def stats_of_unread_traffic(source: Source, env: VethNs, count: int = 500) -> CaptureStats:
    """Open `source`, send `count` datagrams that nobody reads from it, close it: its final
    counters (a small ring fills and drops)."""
    source.open()
    try:
        send_traffic(env, count=count)
        return source.stats()
    finally:
        source.close()


def record_traffic(
    source: RecordSource, env: VethNs, path: Path, snaplen: int = DEFAULT_SNAPLEN
) -> tuple[list[Frame], int]:
    """Write what the opened `source` captures to `path` through `pcap_batches` while 500
    datagrams to UDP_PORT and 100 others are sent; closed after 3 s (the send takes well
    under a second).  The frames read back from the file, and how many the writer counted."""
    sender = threading.Thread(target=lambda: send_traffic(env, count=500, other=100), daemon=True)
    sender.start()
    closer = threading.Timer(3.0, source.close)
    closer.start()
    with PcapWriter(path, LINKTYPE_ETHERNET, snaplen=snaplen, nanosecond=True) as out:
        for records, frames in source.pcap_batches(out.snaplen, True):
            out.write_records(records, frames)
    sender.join(timeout=60)
    closer.join()
    reader = PcapFileSource(path)
    got = [f for batch in reader.batches() for f in batch]
    reader.close()
    return got, out.frames


@contextlib.contextmanager
def _host_listeners(host_ip: str) -> Iterator[None]:
    """UDP sinks (no ICMP replies) and a TCP server that reads to EOF, while traffic runs."""
    udp = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    udp[0].bind((host_ip, UDP_PORT))
    udp[1].bind((host_ip, OTHER_UDP_PORT))
    server = socket.create_server((host_ip, TCP_PORT))
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                while conn.recv(65536):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)
        server.close()
        for s in udp:
            s.close()


def l4_of(data: bytes, offset: int) -> tuple[int, int, int, bytes] | None:
    """(ip_proto, sport, dport, payload) of an IPv4 UDP/TCP frame whose IP header is at offset."""
    if len(data) < offset + 20 or data[offset] >> 4 != 4:
        return None
    ihl = (data[offset] & 15) * 4
    proto = data[offset + 9]
    total = struct.unpack_from(">H", data, offset + 2)[0]
    l4 = offset + ihl
    end = offset + total
    if proto == 17 and len(data) >= l4 + 8:
        sport, dport = struct.unpack_from(">HH", data, l4)
        return proto, sport, dport, data[l4 + 8 : end]
    if proto == 6 and len(data) >= l4 + 20:
        sport, dport = struct.unpack_from(">HH", data, l4)
        doff = (data[l4 + 12] >> 4) * 4
        return proto, sport, dport, data[l4 + doff : end]
    return None


def collect(
    source: Source, done: Callable[[list[Frame]], bool], limit_s: float = 20.0
) -> list[Frame]:
    """Frames from `source` until `done(frames)` or the time bound; closed from a timer thread
    (which also exercises close() from another thread while batches() waits)."""
    frames: list[Frame] = []
    finished = threading.Event()

    def watchdog() -> None:
        deadline = time.monotonic() + limit_s
        while not finished.is_set() and time.monotonic() < deadline:
            if done(list(frames)):
                break
            time.sleep(0.05)
        time.sleep(0.3)  # let anything extra (duplicates) arrive: exactness is asserted
        source.close()

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    for batch in source.batches():
        frames.extend(batch)
    finished.set()
    thread.join(timeout=30)
    return frames


@contextlib.contextmanager
def tcpdump(interface: str, path: Path) -> Iterator[None]:
    """tcpdump -w `path` on `interface` for the duration of the block, stopped by SIGINT."""
    proc = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            interface,
            "-s",
            "0",
            "-U",
            "-n",
            "--immediate-mode",
            "-B",
            "65536",
            "-w",
            str(path),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "listening on ..." once the socket is bound
        assert b"listening" in line, line
        yield
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def read_pcap(path: Path) -> list[tuple[bytes, int]]:
    """(data, wirelen) of each record of a little-endian pcap file (what tcpdump writes)."""
    raw = path.read_bytes()
    magic = struct.unpack_from("<I", raw, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    records = []
    offset = 24
    while offset + 16 <= len(raw):
        _sec, _frac, caplen, wirelen = struct.unpack_from("<IIII", raw, offset)
        offset += 16
        records.append((raw[offset : offset + caplen], wirelen))
        offset += caplen
    return records
