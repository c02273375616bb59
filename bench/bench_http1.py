"""How many small keep-alive HTTP/1.1 request/response pairs per second go through feed().

Run: .venv/bin/python bench/bench_http1.py [PAIRS].  One connection, one segment per message
(as the flow table delivers them), exchanges built in full.  Prints CPU-time throughput; asserts nothing.
"""

from __future__ import annotations

import sys
import time

from pilotfish.config import DissectLimits
from pilotfish.dissect.http1 import Http1Dissector
from pilotfish.dissect.registry import Registry
from pilotfish.model import CLIENT, IPPROTO_TCP, SERVER

REQUEST = (
    b"GET /api/v1/items/42?expand=1 HTTP/1.1\r\nHost: shop.svc\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 25 Nov 2025 06:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 27\r\nConnection: keep-alive\r\n\r\n"
    b'{"id": 42, "name": "thing"}'
)


def run(pairs: int, via_registry: bool) -> float:
    limits = DissectLimits()
    d = (
        Registry(limits).dissector_for(IPPROTO_TCP, 40000, 80)
        if via_registry
        else Http1Dissector(limits)
    )
    feed = d.feed
    got = 0
    start = time.process_time()  # CPU seconds: other processes on the box do not count
    ts = 0.0
    for _ in range(pairs):
        ts += 0.001
        feed(CLIENT, REQUEST, ts)
        got += len(feed(SERVER, RESPONSE, ts))
    elapsed = time.process_time() - start
    assert got == pairs
    return pairs / elapsed


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for label, via in (("Http1Dissector", False), ("Registry sniffer -> http", True)):
        rate = max(run(pairs, via) for _ in range(3))
        print(f"{label:28s} {rate:10,.0f} pairs/s per CPU second (best of 3, {pairs:,} pairs)")


if __name__ == "__main__":
    main()
