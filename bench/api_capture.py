"""Capture while the API works, in one experiment: live clients, queries, and no drops.

`pilotfish worker` captures a testbed bridge (AF_PACKET) inside its default resource limits
(a cgroup with `cpu: 750m`, `memory: 1Gi`, as the DaemonSet runs it; see
`testbed.limits`) while wrk in a client pod sends HTTP GETs to nginx at a fixed pace
(CONNECTIONS keep-alive connections, each pausing PAUSE_MS between requests: about
5,500-6,000 requests/s here).  Three cases, same load:

- API idle;
- CLIENTS WebSocket clients streaming every entry (`/api/stream`, no filter);
- the same clients plus a loop of REST queries (entries, stats, service map) back to back.

Reported per case: requests nginx logged and their rate, packets the capture received and
the kernel dropped, entries stored, per live client the entries delivered (slowest client,
as a rate over the load and as a share of the entries stored) and the drops it was told of,
entries the capture side could not hand to the API process, queries answered, the worker's
CPU (capture and API process, in cores), how often the CPU quota throttled it, its peak
memory and OOM kills.  Targets: no kernel drops in any case (the same as API idle), and
CLIENTS clients at 5,000 entries/s each.

Bounded: wrk runs LOAD_S seconds; clients stop DRAIN_S after the stream goes quiet;
every process is stopped by PID; the testbed and the cgroups are removed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.nodes import Node

from bench.api_load import QUERIES, StreamClients
from bench.common import table
from pilotfish.testbed.limits import Limits, LimitsUnavailable
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.services import access_count, start_nginx
from pilotfish.worker import read_stats

LOAD_S = 8
CONNECTIONS = 72
PAUSE_MS = 10
CLIENTS = 20
TARGET_PER_CLIENT = 5_000
SETTLE_S = 1.5  # the ring's last block, the reorder delay, a commit, the feed's last pass
MODES = ("API idle", f"{CLIENTS} WS clients", f"{CLIENTS} WS clients + query loop")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Case:
    mode: str
    requests: int
    received: int
    dropped: int
    entries: int
    delivered: list[int]  # per live client
    told: list[int]  # drops each client was told of
    handover_dropped: int  # entries the capture side could not pass to the API process
    queries: int
    cpu: dict[str, float]  # cores, per worker process
    throttled: str
    peak_mb: float
    oom_kills: int

    @property
    def rate(self) -> float:
        return self.requests / LOAD_S


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _wrk(tb: Testbed, url: str, script: Path) -> None:
    script.write_text(f"function delay()\n  return {PAUSE_MS}\nend\n")
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{LOAD_S}s", "-s", str(script), url]
    done = tb.run(tb.pod("client"), argv, timeout=LOAD_S + 30)
    if done.returncode != 0 or not re.search(rb"requests in", done.stdout):
        raise RuntimeError(f"wrk failed: {done.stderr.decode()[-300:]}")


def _query_loop(node: Node, stop: threading.Event, count: list[int]) -> None:
    while not stop.is_set():
        for path, params in QUERIES:
            with contextlib.suppress(OSError):
                node.get(path, **params)
                count[0] += 1


def default_limits() -> tuple[Limits | None, str]:
    """The worker's default limits as a cgroup, or None and why not."""
    try:
        return Limits(), "in limits cpu 750m, memory 1Gi"
    except LimitsUnavailable as exc:
        return None, f"WITHOUT limits ({exc})"


def run_case(mode: str, limits: Limits | None) -> Case:
    clients = CLIENTS if mode != MODES[0] else 0
    with Testbed() as tb, tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp:
        tb.add_pod("client")
        web = tb.add_pod("web")
        nginx = start_nginx(tb, web, access_log=True)
        node = Node(tb.bridge, Path(tmp) / "data", wrap=None if limits is None else limits.argv)
        stop, queries = threading.Event(), [0]
        reader = None
        try:
            pids = node.pids()
            if clients:
                reader = StreamClients(node.port, clients)
            if mode == MODES[2]:
                threading.Thread(
                    target=_query_loop, args=(node, stop, queries), daemon=True
                ).start()
            before = {k: _cpu_s(p) for k, p in pids.items()}
            requests = access_count(nginx)
            _wrk(tb, f"{nginx.url}/api/v1/items", Path(tmp) / "pace.lua")
            requests = access_count(nginx) - requests
            cpu = {k: (_cpu_s(p) - before[k]) / LOAD_S for k, p in pids.items()}
            time.sleep(SETTLE_S)
            stop.set()
            results = reader.results(LOAD_S + 60) if reader is not None else []
        finally:
            stop.set()
            node.stop()
            if reader is not None:
                reader.close()
        stats = read_stats(Path(tmp) / "data" / "stats.json")
    usage = None if limits is None else limits.usage()
    capture, feed = stats.get("capture", {}), stats.get("feed", {})
    entries = stats.get("pipeline", {}).get("entries", {}).get("http", 0)
    return Case(
        mode,
        requests,
        int(capture.get("received", 0)),
        int(capture.get("dropped", 0)) + int(capture.get("extra", {}).get("ring_dropped", 0)),
        int(entries),
        [r[0] for r in results],
        [r[1] for r in results],
        int(feed.get("dropped", 0)),
        queries[0],
        cpu,
        "-" if usage is None else f"{usage.throttled}/{usage.periods}",
        0.0 if usage is None else usage.peak_memory / 2**20,
        0 if usage is None else usage.oom_kills,
    )


def cases_table(cases: list[Case], limited: str) -> str:
    rows = []
    for c in cases:
        slowest = min(c.delivered, default=0)
        rows.append(
            (
                c.mode,
                f"{c.requests:,}",
                f"{c.rate:,.0f}",
                f"{c.received:,}",
                c.dropped,
                f"{c.entries:,}",
                f"{slowest / LOAD_S:,.0f}" if c.delivered else "-",
                f"{slowest / c.entries:.1%}" if c.delivered and c.entries else "-",
                max(c.told, default=0) if c.delivered else "-",
                c.handover_dropped,
                c.queries,
                f"{c.cpu.get('capture', 0):.2f}+{c.cpu.get('api', 0):.2f}",
                c.throttled,
                f"{c.peak_mb:,.0f}",
                c.oom_kills,
            )
        )
    return table(
        f"capture while the API works: wrk {CONNECTIONS} connections x {PAUSE_MS} ms pause, "
        f"{LOAD_S} s, AF_PACKET on the testbed bridge, worker {limited} "
        f"(target: no kernel drops in any case; {CLIENTS} clients at "
        f"{TARGET_PER_CLIENT:,} entries/s each)",
        (
            "API",
            "requests",
            "req/s",
            "packets",
            "kernel drops",
            "entries",
            "slowest client/s",
            "its share",
            "told dropped",
            "hand-over drops",
            "queries",
            "CPU cap+api",
            "throttled",
            "peak MiB",
            "OOM",
        ),
        rows,
    )


def run() -> str:
    if os.geteuid() != 0:
        return "capture while the API works: skipped (needs root for network namespaces)"
    cases, limited = [], ""
    for mode in MODES:  # a cgroup of its own per case: peak memory and throttling per case
        limits, limited = default_limits()
        try:
            cases.append(run_case(mode, limits))
        finally:
            if limits is not None:
                limits.close()
    return cases_table(cases, limited)


if __name__ == "__main__":
    mp.set_start_method("fork")
    print(run())
