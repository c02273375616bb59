"""`pilotfish worker` on a testbed bridge: real nginx, curl and wrk inside pods, AF_PACKET.

One run answers the same query through REST, the WebSocket stream and `pilotfish read
--filter` on tcpdump's recording of the same bridge, exports PCAP (read back by tshark) and
serves /metrics; then SIGTERM must stop both processes with exit 0.  Two more runs flood
the bridge: SIGKILL of the capture process mid-flood, and a small storage limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from pilotfish.store.sqlite import SqliteStore
from pilotfish.testbed.load import spawn_load
from pilotfish.testbed.netns import Pod, Testbed
from pilotfish.testbed.recorder import start_tcpdump, stop_tcpdump
from pilotfish.testbed.services import start_nginx
from pilotfish.worker import read_stats
from tests.integration.nodes import Node, is_root, niceness, wrk
from tests.integration.scenario import entries as read_entries

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_root(), reason="needs root for network namespaces"),
]

QUERY = 'http && (status_code == 404 || path.startsWith("/api"))'
PATHS = ["/", "/api/v1/items", "/missing", "/redirect", "/api/v1/nope"]
ROUNDS = 3
MATCHING = 3 * ROUNDS  # /api/v1/items, /missing, /api/v1/nope per round
Key = tuple[Any, ...]


def key(e: dict[str, Any]) -> Key:
    return (
        e["method"],
        e["path"],
        e["status"],
        e["src"]["ip"],
        e["src"]["port"],
        e["dst"]["ip"],
        e["dst"]["port"],
    )


@dataclass
class Bed:
    tb: Testbed
    client: Pod
    web: Pod
    base: str


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    with Testbed() as tb:
        client, web = tb.add_pod("client"), tb.add_pod("web")
        nginx = start_nginx(tb, web)
        yield Bed(tb, client, web, nginx.url)


class StreamClient:
    """A WebSocket client of /api/stream collecting entries in a thread."""

    def __init__(self, port: int, query: str) -> None:
        from urllib.parse import quote

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(f"ws://127.0.0.1:{port}/api/stream?q={quote(query)}")
        )
        hello = json.loads(self.ws.recv(timeout=5))
        assert hello["type"] == "hello"
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(json.loads(self.ws.recv(timeout=0.2)))
            except TimeoutError:
                continue
            except Exception:
                return

    def entries(self) -> list[dict[str, Any]]:
        return [e for m in self.messages if m["type"] == "entries" for e in m["entries"]]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._stack.close()


@dataclass
class Served:
    recording: Path
    rest: list[dict[str, Any]]
    ws: list[dict[str, Any]]
    ws_messages: list[dict[str, Any]]
    metrics: str
    export: Path
    exit_code: int
    stderr: str
    niceness: dict[str, int]
    left: list[int] = field(default_factory=list)


def _wait_for(count: int, node: Node, query: str, seconds: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = node.entries(query)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def served(bed: Bed, tmp_path_factory: pytest.TempPathFactory) -> Served:
    tmp = tmp_path_factory.mktemp("worker")
    node = Node(bed.tb.bridge, tmp / "data")
    try:
        pids = node.pids()
        nice = {name: niceness(pid) for name, pid in pids.items()}
        rec = start_tcpdump(bed.tb, bed.tb.bridge, tmp / "bridge.pcap")
        stream = StreamClient(node.port, QUERY)
        for _ in range(ROUNDS):
            urls = [f"{bed.base}{p}" for p in PATHS]  # one keep-alive connection per round
            done = bed.tb.run(
                bed.client, ["curl", "-s", "--max-time", "5", *(("-o", "/dev/null") * 5), *urls]
            )
            assert done.returncode == 0, done.stderr
        rest = _wait_for(MATCHING, node, QUERY)
        time.sleep(0.5)  # the stream is fed as the store is; give the last message time
        metrics = node.get("/metrics").decode()
        stop_tcpdump(bed.tb, rec)
        stream.close()
        export = tmp / "export.pcap"
        export.write_bytes(node.get("/api/export.pcap", q=QUERY))
    finally:
        code = node.stop(signal.SIGTERM)
    left = [pid for pid in pids.values() if Path(f"/proc/{pid}").exists()]
    return Served(
        rec.path, rest, stream.entries(), stream.messages, metrics, export, code, node.stderr,
        nice, left,
    )  # fmt: skip


def test_rest_ws_and_read_filter_give_the_same_entries(served: Served) -> None:
    offline = read_entries(served.recording, "--filter", QUERY)
    want = Counter(key(e) for e in offline)
    assert len(offline) == MATCHING
    assert Counter(key(e) for e in served.rest) == want
    assert Counter(key(e) for e in served.ws) == want
    assert [m for m in served.ws_messages if m["type"] == "dropped"] == []


def _tshark_packets(path: Path, display: str) -> Counter[tuple[str, ...]]:
    argv = ["tshark", "-n", "-r", str(path), "-o", "tcp.relative_sequence_numbers:FALSE"]
    argv += ["-Y", display, "-T", "fields"]
    for f in ("ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.seq", "tcp.ack"):
        argv += ["-e", f]
    argv += ["-e", "tcp.flags", "-e", "tcp.len"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return Counter(tuple(line.split("\t")) for line in out.splitlines())


def test_pcap_export_holds_exactly_the_packets_of_the_exported_flows(served: Served) -> None:
    ports = sorted({e["src"]["port"] for e in served.rest})
    flows = " || ".join(f"tcp.port == {p}" for p in ports)
    exported = _tshark_packets(served.export, "tcp")
    assert exported == _tshark_packets(served.recording, f"tcp && ({flows})")
    assert {int(k[1]) for k in exported} - {80} == set(ports)


def test_metrics_parse_and_count_what_happened(served: Served) -> None:
    families = {f.name: f for f in text_string_to_metric_families(served.metrics)}

    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[name].samples
            if s.name.endswith(("_total", name)) and labels.items() <= s.labels.items()
        )

    assert value("pilotfish_packets_received") > 0
    assert value("pilotfish_packets_dropped") == 0
    assert value("pilotfish_bytes_processed") > 0
    assert value("pilotfish_reassembled_bytes") > 0
    assert value("pilotfish_entries", protocol="http") >= ROUNDS * len(PATHS)
    assert value("pilotfish_matched_pairs", protocol="http") >= ROUNDS * len(PATHS)
    assert value("pilotfish_store_bytes") > 0 and value("pilotfish_spool_bytes") > 0
    assert value("pilotfish_websocket_clients") == 1  # the stream client was connected
    assert value("pilotfish_websocket_dropped_messages") == 0
    assert "pilotfish_dropped_streams" in families and "pilotfish_live_streams" in families


def test_api_runs_reniced_and_sigterm_stops_both_processes(served: Served) -> None:
    assert served.niceness["api"] >= served.niceness["capture"] + 10
    assert served.exit_code == 0, served.stderr
    assert served.left == []
    assert "pilotfish worker: serving http://127.0.0.1:" in served.stderr
    assert "(node n1, capture afpacket)" in served.stderr


# --- floods ----------------------------------------------------------------------------------


def _encode(entry: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(entry)


def test_sigkill_of_capture_loses_nothing_older_than_a_second(bed: Bed, tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = Node(bed.tb.bridge, data)
    rec = start_tcpdump(bed.tb, bed.tb.bridge, tmp_path / "flood.pcap")
    # one keep-alive client pausing FLOOD_PAUSE_S between requests (about a thousand a
    # second): a rate the worker keeps up with even on a busy machine, so what it lacks
    # after the kill is what the kill lost
    url = f"{bed.base}/api/v1/items"
    flood = spawn_load(bed.tb, bed.client, [url], 20_000, FLOOD_S, FLOOD_PAUSE_S)
    try:
        time.sleep(2.5)
        capture = node.pids()["capture"]
        killed_at = time.time()
        os.kill(capture, signal.SIGKILL)
        code = node.proc.wait(15)
        assert flood.wait(FLOOD_S + 10) == 0
    finally:
        node.stop()
        stop_tcpdump(bed.tb, rec)
    assert code == 1, node.stderr
    assert "the capture process ended (killed by SIGKILL); stopping the API process" in (
        node.stderr
    )
    assert not Path(f"/proc/{capture}").exists()
    stats = read_stats(data / "stats.json")
    assert stats["capture"]["dropped"] == 0, "capture dropped packets: the check means nothing"
    older = [e for e in read_entries(rec.path) if e["timestamp"] < killed_at - 1.0]
    assert len(older) > 200, len(older)  # a flood, not a trickle
    kept = _store_entries_all(data)
    per_port: Counter[int] = Counter(e["src"]["port"] for e in kept)
    for port, n in Counter(e["src"]["port"] for e in older).items():
        assert per_port[port] >= n, f"flow from port {port}: {n} entries, {per_port[port]} kept"
    restarted = Node(bed.tb.bridge, data)  # opens the same store again and serves it
    try:
        assert len(restarted.entries("http")) == len(kept)
        curl = ["curl", "-s", "-o", "/dev/null", "--max-time", "5", f"{bed.base}/after"]
        assert bed.tb.run(bed.client, curl).returncode == 0
        now = _wait_for(len(kept) + 1, restarted, "http")
        assert len(now) == len(kept) + 1
        assert len({e["id"] for e in now}) == len(now)  # numbering continued, no reuse
    finally:
        assert restarted.stop() == 0


def _store_entries_all(data: Path) -> list[dict[str, Any]]:
    store = SqliteStore(data / "entries.db", reader=True)
    try:
        out: list[dict[str, Any]] = []
        before = None
        while True:
            page = store.query(None, 10_000, before, None)
            out.extend(json.loads(_encode(e)) for e in page.entries)
            if page.older is None or not page.entries:
                return out
            before = page.older
    finally:
        store.close()


LIMIT = 2 * 1024 * 1024
FLOOD_S = 4.0
FLOOD_PAUSE_S = 0.0005


def test_store_bound_holds_under_a_flood(bed: Bed, tmp_path: Path) -> None:
    config = tmp_path / "pilotfish.yaml"
    config.write_text(f"storage_limit: {LIMIT}\nspool_limit: {LIMIT}\n")
    data = tmp_path / "data"
    node = Node(bed.tb.bridge, data, "--config", str(config))
    sizes: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.25):
            text = node.get("/metrics").decode()
            for family in text_string_to_metric_families(text):
                if family.name == "pilotfish_store_bytes":
                    sizes.append(family.samples[0].value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wrk(bed.tb, bed.client, f"{bed.base}/api/v1/items", seconds=4)
        time.sleep(1.0)
        metrics = node.get("/metrics").decode()
    finally:
        sampling.set()
        sampler.join(5)
        assert node.stop() == 0
    evicted = [
        s.value
        for f in text_string_to_metric_families(metrics)
        if f.name == "pilotfish_dropped"
        for s in f.samples
        if s.labels.get("what") == "store_evicted"
    ]
    assert evicted and evicted[0] > 0, "the flood never filled the store"
    assert sizes and max(sizes) <= LIMIT
    on_disk = sum(p.stat().st_size for p in data.glob("entries.db*"))
    assert on_disk <= LIMIT
    spool = sum(p.stat().st_size for p in (data / "spool").iterdir())
    assert spool <= LIMIT
