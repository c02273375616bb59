"""Readiness probes run inside a pod: `python -m pilotfish.testbed.probe tcp|dns IP PORT`.

`tcp` retries a TCP connect until it succeeds; `dns` retries a DNS A query for a name until
any answer (even NXDOMAIN) comes back.  Both stop at `--timeout` seconds (bounded retries,
50 ms apart) and exit 0 when the service answered, 1 when it never did.  They run inside the
pod because the root namespace has no route into the testbed.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Final

RETRY_S: Final = 0.05
_DNS_HEADER: Final = struct.Struct("!HHHHHH")


def tcp_ready(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def dns_query(qid: int, name: str, qtype: int = 1) -> bytes:
    """A minimal recursion-desired DNS query for `name` (type A unless told)."""
    labels = b"".join(
        bytes([len(part)]) + part.encode("ascii") for part in name.strip(".").split(".") if part
    )
    return (
        _DNS_HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", qtype, 1)
    )


def dns_ready(host: str, port: int, name: str = "probe.pilotfish.test") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(dns_query(0x5046, name), (host, port))
            reply = sock.recv(4096)
        except OSError:
            return False
    return len(reply) >= _DNS_HEADER.size and reply[:2] == b"\x50\x46"


def wait(check: Callable[[], bool], timeout_s: float) -> bool:
    """Call `check` every RETRY_S until it returns True or timeout_s passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(RETRY_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pilotfish.testbed.probe")
    parser.add_argument("kind", choices=["tcp", "dns"])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.kind == "tcp":
        ok = wait(lambda: tcp_ready(args.host, args.port), args.timeout)
    else:
        ok = wait(lambda: dns_ready(args.host, args.port), args.timeout)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
