"""The client loop that runs inside a pod: `python -m pilotfish.testbed.loadgen SPEC_JSON`.

SPEC_JSON is {"targets": [...], "requests": N, "duration_s": S, "pause_s": P}.  Targets are
URLs: `http://IP:PORT/path` (GET over one keep-alive connection, reopened after errors),
`dns://IP[:PORT]/NAME[?type=A|AAAA|TXT]` (one UDP query, 1 s timeout) and
`redis://IP[:PORT]/` (SET, GET, PING in turn over one connection).  Targets are used round
robin until N requests were made or S seconds passed, whichever comes first; every socket
operation has a 2 s timeout.  The result is one JSON object on stdout: totals and per-target
counts of sent/ok/errors.  Standard library only.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

from pilotfish.testbed.probe import dns_query

SOCKET_TIMEOUT_S: Final = 2.0
MAX_REQUESTS: Final = 10_000_000
MAX_DURATION_S: Final = 3600.0
QTYPES: Final = {"A": 1, "AAAA": 28, "TXT": 16}
_REDIS_OPS: Final = (
    b"*3\r\n$3\r\nSET\r\n$9\r\npf:demo:k\r\n$5\r\nhello\r\n",
    b"*2\r\n$3\r\nGET\r\n$9\r\npf:demo:k\r\n",
    b"*1\r\n$4\r\nPING\r\n",
)


@dataclass
class Counts:
    sent: int = 0
    ok: int = 0
    errors: int = 0


@dataclass
class _HttpTarget:
    host: str
    port: int
    path: str
    conn: http.client.HTTPConnection | None = None

    def __call__(self) -> bool:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=SOCKET_TIMEOUT_S)
        try:
            self.conn.request("GET", self.path, headers={"User-Agent": "pilotfish-loadgen"})
            resp = self.conn.getresponse()
            resp.read()
            return resp.status < 500
        except (OSError, http.client.HTTPException):
            self.close()
            return False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class _DnsTarget:
    host: str
    port: int
    name: str
    qtype: int
    qid: int = 0

    def __call__(self) -> bool:
        self.qid = (self.qid + 1) & 0xFFFF
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.sendto(dns_query(self.qid, self.name, self.qtype), (self.host, self.port))
                reply = sock.recv(4096)
            except OSError:
                return False
        return len(reply) >= 4 and struct.unpack_from("!H", reply)[0] == self.qid

    def close(self) -> None:
        return


@dataclass
class _RedisTarget:
    host: str
    port: int
    sock: socket.socket | None = None
    turn: int = 0

    def __call__(self) -> bool:
        try:
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), SOCKET_TIMEOUT_S)
            self.sock.sendall(_REDIS_OPS[self.turn % len(_REDIS_OPS)])
            self.turn += 1
            return _read_reply(self.sock)[:1] in (b"+", b"$")
        except (OSError, ValueError):
            self.close()
            return False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _read_reply(sock: socket.socket, limit: int = 65536) -> bytes:
    """Read one RESP simple or bulk-string reply (at most `limit` bytes)."""
    buf = b""
    while True:
        end = buf.find(b"\r\n")
        if end >= 0:
            if buf[:1] != b"$":
                return buf
            size = int(buf[1:end])
            if size < 0 or len(buf) >= end + 2 + size + 2:
                return buf
        if len(buf) > limit:
            raise ValueError("redis reply too long")
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("redis closed the connection")
        buf += chunk


_Target = _HttpTarget | _DnsTarget | _RedisTarget


def parse_target(url: str) -> _Target:
    """One target from its URL; ValueError for an unknown scheme or a missing host."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"target {url!r} has no host")
    if parts.scheme == "http":
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _HttpTarget(parts.hostname, parts.port or 80, path)
    if parts.scheme == "dns":
        qtype = parse_qs(parts.query).get("type", ["A"])[0].upper()
        if qtype not in QTYPES or not parts.path.strip("/"):
            raise ValueError(f"dns target {url!r}: want dns://IP/NAME?type=A|AAAA|TXT")
        return _DnsTarget(parts.hostname, parts.port or 53, parts.path.strip("/"), QTYPES[qtype])
    if parts.scheme == "redis":
        return _RedisTarget(parts.hostname, parts.port or 6379)
    raise ValueError(f"target {url!r}: scheme must be http, dns or redis")


def run(
    targets: list[str],
    requests: int,
    duration_s: float,
    pause_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, object]:
    """The bounded loop; returns the result object printed by main()."""
    requests = max(0, min(requests, MAX_REQUESTS))
    duration_s = max(0.0, min(duration_s, MAX_DURATION_S))
    clients = [parse_target(t) for t in targets]
    counts = [Counts() for _ in clients]
    start = clock()
    deadline = start + duration_s
    sent = 0
    while clients and sent < requests and clock() < deadline:
        index = sent % len(clients)
        counts[index].sent += 1
        if clients[index]():
            counts[index].ok += 1
        else:
            counts[index].errors += 1
        sent += 1
        if pause_s > 0:
            time.sleep(pause_s)
    for client in clients:
        client.close()
    return {
        "sent": sent,
        "ok": sum(c.ok for c in counts),
        "errors": sum(c.errors for c in counts),
        "elapsed_s": round(clock() - start, 6),
        "per_target": {t: vars(c) for t, c in zip(targets, counts, strict=True)},
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pilotfish.testbed.loadgen SPEC_JSON", file=sys.stderr)
        return 2
    try:
        spec = json.loads(args[0])
        result = run(
            [str(t) for t in spec["targets"]],
            int(spec["requests"]),
            float(spec["duration_s"]),
            float(spec.get("pause_s", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        print(f"loadgen: bad spec: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
