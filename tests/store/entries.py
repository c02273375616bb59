"""Hand-made entries for the store tests: deterministic, varied, easy to reason about."""

from __future__ import annotations

from pilotfish.model import Endpoint, Entry, Payload

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make(
    i: int,
    *,
    protocol: str = "http",
    status: int | str | None = 200,
    elapsed_us: int | None = 1000,
    src_pod: str = "cart-1",
    src_namespace: str = "shop",
    dst_service: str = "api",
    dst_namespace: str = "shop",
    path: str = "/api/items",
    body: str = "",
    ts: float | None = None,
    client_port: int | None = None,
    stream: str | None = None,
) -> Entry:
    """Entry number i: timestamp T0 + i seconds unless given, id "n-<i>"."""
    port = 40_000 + i % 20_000 if client_port is None else client_port
    return Entry(
        id=f"n-{i}",
        protocol=protocol,
        timestamp=T0 + i if ts is None else ts,
        elapsed_us=elapsed_us,
        src=Endpoint("10.1.0.1", port, pod=src_pod, namespace=src_namespace),
        dst=Endpoint(
            "10.2.0.1",
            53 if protocol == "dns" else 80,
            service=dst_service,
            namespace=dst_namespace,
        ),
        method="GET",
        path=path,
        status=status,
        summary=f"GET {path} -> {status}",
        request=Payload(size=100 + len(body), body=body),
        response=Payload(size=200),
        stream=f"n-s{i}" if stream is None else stream,
        node="n",
    )
