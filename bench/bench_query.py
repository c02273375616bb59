"""Query evaluation speed: entries per second for typical filters (prints a table, no asserts).

Run: .venv/bin/python bench/bench_query.py [N]
"""

from __future__ import annotations

import random
import sys
import time

from pilotfish.model import Endpoint, Entry, Payload
from pilotfish.query import compile_query

FILTERS = (
    'http && method == "GET" && status_code >= 400',
    'src.pod.startsWith("cart-") && elapsed_time > 5000000',
    'method in ["GET", "HEAD"] && dst.namespace == "shop"',
    'request.headers["content-type"].contains("json")',
    'path.matches("^/api/v[0-9]+/")',
    'timestamp > now() - duration("5m")',
    "",
)


def _entries(n: int, seed: int = 1) -> list[Entry]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            Entry(
                id=f"n-{i}",
                protocol=rng.choice(("http", "http", "dns", "grpc")),
                timestamp=1767225600.0 + i * 0.001,
                elapsed_us=rng.choice((None, 100, 6_000_000)),
                src=Endpoint(
                    ip="10.0.0.1", port=40000, pod=rng.choice(("cart-1", "api-2")), namespace="shop"
                ),
                dst=Endpoint(ip="10.0.0.2", port=80, namespace=rng.choice(("shop", "other"))),
                method=rng.choice(("GET", "POST", "HEAD")),
                path=rng.choice(("/api/v1/cart", "/healthz", "/api/v2/items?x=1")),
                status=rng.choice((200, 404, 503, None)),
                request=Payload(
                    headers={"content-type": rng.choice(("application/json", "text/plain"))}
                ),
            )
        )
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rows = _entries(n)
    print(f"{'filter':56} {'matched':>8} {'entries/s':>12}")
    for text in FILTERS:
        query = compile_query(text, clock=lambda: 1767225600.0 + n * 0.001)
        match = query.match
        start = time.perf_counter()
        hits = sum(1 for e in rows if match(e))
        elapsed = time.perf_counter() - start
        print(f"{text or '(empty)':56} {hits:>8} {n / elapsed:>12,.0f}")
    start = time.perf_counter()
    for _ in range(1000):
        compile_query(FILTERS[0])
    per_query_us = (time.perf_counter() - start) * 1e6 / 1000
    print(f"compile: {per_query_us:.1f} us per query ({FILTERS[0]})")


if __name__ == "__main__":
    main()
