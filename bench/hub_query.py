"""The hub's price: the same API calls through `pilotfish hub` over two workers, and
straight to one worker holding all their entries (its peer in the table).

Builds the store suite's synthetic entries, alternately into two worker stores and all into
a third, serves each with its own uvicorn process (`create_app(LocalBackend(...))`), starts
`pilotfish hub` over the two, and reports p50/p99 milliseconds of typical calls on each
side, the ratio hub/single, and the hub's peak RSS.  Every timed loop is bounded in runs and
seconds; processes are stopped by PID.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bench.common import table
from bench.store_query import _timed, entries
from pilotfish.store.sqlite import SqliteStore
from pilotfish.testbed.procs import stop_process

ENTRIES = 200_000
CALLS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("entries, limit 100", "/api/entries", {}),
    ("entries, http && status_code >= 500", "/api/entries", {"q": "http && status_code >= 500"}),
    ('entries, src.pod.startsWith("cart-")', "/api/entries", {"q": 'src.pod.startsWith("cart-")'}),
    ("entries, limit 1000", "/api/entries", {"limit": "1000"}),
    ("stats, 60 s buckets", "/api/stats", {}),
    ("stats, group_by=protocol", "/api/stats", {"group_by": "protocol"}),
    ("servicemap", "/api/servicemap", {}),
    ("entry by id", "/api/entries/bench-777", {}),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(argv: list[str], url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{argv} did not start")
            time.sleep(0.1)
        yield proc
    finally:
        stop_process(proc, grace_s=15)


def _serve_worker(db: str, port: int) -> None:
    """Child process: serve one store's API until SIGTERM."""
    import uvicorn

    from pilotfish.api.app import create_app
    from pilotfish.api.backend import LocalBackend

    store = SqliteStore(db, 8 << 30, reader=True)
    app = create_app(LocalBackend(store, node=Path(db).stem), None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _build(root: Path, count: int) -> None:
    stores = {n: SqliteStore(root / f"{n}.db", 8 << 30) for n in ("a", "b", "all")}
    for k, batch in enumerate(entries(count)):
        stores["a" if k % 2 == 0 else "b"].add(batch)  # interleaved in 5,000-entry runs
        stores["all"].add(batch)
    for s in stores.values():
        s.close()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(count: int = ENTRIES) -> str:
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-hub-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        _build(root, count)
        urls = {}
        for name in ("a", "b", "all"):
            port = _free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", "bench.hub_query", "serve", str(root / f"{name}.db")]
            stack.enter_context(_process([*argv, str(port)], urls[name]))
        port = _free_port()
        hub_url = f"http://127.0.0.1:{port}"
        # a generous timeout: this measures merging, not giving up on a loaded worker
        hub_argv = [
            sys.executable,
            "-m",
            "pilotfish",
            "hub",
            "--port",
            str(port),
            "--timeout",
            "120",
        ]
        hub = stack.enter_context(
            _process([*hub_argv, "--worker", urls["a"], "--worker", urls["b"]], hub_url)
        )
        client = stack.enter_context(httpx.Client(timeout=300))
        for name, path, params in CALLS:
            sides: list[tuple[float, float, int]] = []
            for base in (hub_url, urls["all"]):

                def call(
                    base: str = base, path: str = path, params: dict[str, str] = params
                ) -> object:
                    return client.get(base + path, params=params).raise_for_status()

                sides.append(_timed(call, 30, 4.0))
            (h50, h99, hn), (s50, s99, _) = sides
            rows.append(
                [
                    name,
                    f"{h50:.1f}",
                    f"{h99:.1f}",
                    f"{s50:.1f}",
                    f"{s99:.1f}",
                    f"{h50 / s50:.2f}",
                    hn,
                ]
            )
        rss = _peak_rss_mb(hub.pid)
    title = (
        f"hub over 2 workers ({count // 2:,} entries each) vs one worker holding all "
        f"{count:,}; hub peak RSS {rss:.0f} MB"
    )
    header = [
        "call",
        "hub p50 ms",
        "hub p99 ms",
        "single p50 ms",
        "single p99 ms",
        "p50 ratio",
        "runs",
    ]
    return table(title, header, rows)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve_worker(sys.argv[2], int(sys.argv[3]))
    else:
        print(run(int(sys.argv[1]) if len(sys.argv) > 1 else ENTRIES))
