"""Two testbed "nodes", a worker capturing each, and `pilotfish hub` in front of both.

Node 1 runs nginx and the testbed API, node 2 runs dnsmasq and nginx; a client pod on each
sends a fixed, bounded plan.  Each worker captures its client's host-side veth.  The same
query through the hub's REST and its WebSocket stream must give exactly the union of the
two workers' answers, and that union must be exactly the traffic sent.  Then worker 2 is
killed: the hub names it on its answers, in /api/workers, /readyz and its live stream,
while node 1's new traffic still comes through.

Workers are `pilotfish worker` when this checkout has it, else the stand-in process of
`tests.integration.standin_worker` (same flags, capture and API in one process).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from pilotfish.hub.app import NOTICE_HEADER
from pilotfish.testbed.netns import Pod, Testbed
from pilotfish.testbed.procs import stop_process
from pilotfish.testbed.services import DNS_DOMAIN, start_api, start_dnsmasq, start_nginx
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

QUERY = "http || dns"
Key = tuple[str, str, str, Any]  # (protocol, method, path, status)


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/readyz", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


REAL_WORKER = importlib.util.find_spec("pilotfish.node") is not None


def _worker_argv() -> list[str]:
    if REAL_WORKER:
        return [sys.executable, "-m", "pilotfish", "worker"]
    return [sys.executable, "-m", "tests.integration.standin_worker"]


def frame_times(path: Path) -> list[float]:
    """Frame timestamps as tshark reads them (it must read the file without complaint)."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [float(x) for x in out.split()]


@contextmanager
def process(argv: list[str], log: Path, ready_line: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run argv (stderr to `log`) until the block ends; wait for `ready_line` first."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        wait_for(lambda: ready_line in log.read_text() or proc.poll() is not None, ready_line)
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        stop_process(proc, grace_s=15)


def curl(tb: Testbed, client: Pod, url: str) -> None:
    r = tb.run(client, ["curl", "-sS", "-o", "/dev/null", "--max-time", "5", url], timeout=10)
    assert r.returncode == 0, r.stderr


def dig(tb: Testbed, client: Pod, server: str, name: str) -> None:
    r = tb.run(client, ["dig", f"@{server}", "+tries=1", "+time=3", name, "A"], timeout=10)
    assert r.returncode == 0, r.stderr


class Node:
    """One testbed node: its pods, services and the plan its client sends."""

    def __init__(self, stack: ExitStack, subnet: str, with_dns: bool) -> None:
        self.tb = stack.enter_context(Testbed(subnet=subnet))
        self.client = self.tb.add_pod("client")
        self.web = self.tb.add_pod("web")
        start_nginx(self.tb, self.web)
        self.other = self.tb.add_pod("dns" if with_dns else "api")
        if with_dns:
            start_dnsmasq(self.tb, self.other)
        else:
            start_api(self.tb, self.other, 8080)
        self.with_dns = with_dns
        self.sent: Counter[Key] = Counter()

    def send_plan(self, rounds: int = 2) -> None:
        for _ in range(rounds):
            if self.with_dns:
                for name, rcode in (
                    (f"client.default.{DNS_DOMAIN}", "NOERROR"),
                    (f"nowhere.{DNS_DOMAIN}", "NXDOMAIN"),
                ):
                    dig(self.tb, self.client, self.other.ip, name)
                    self.sent[("dns", "A", name, rcode)] += 1
                curl(self.tb, self.client, f"http://{self.web.ip}/redirect")
                self.sent[("http", "GET", "/redirect", 301)] += 1
            else:
                for path, status in (("/", 200), ("/missing", 404)):
                    curl(self.tb, self.client, f"http://{self.web.ip}{path}")
                    self.sent[("http", "GET", path, status)] += 1
                curl(self.tb, self.client, f"http://{self.other.ip}:8080/api/v1/cart?user=n1")
                self.sent[("http", "GET", "/api/v1/cart?user=n1", 200)] += 1


class StreamCollector:
    """A live client of the hub, reading in a thread until closed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict[str, Any]] = []
        self.opened = threading.Event()
        self.ws: Any = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "the hub's stream did not open"

    def _read(self) -> None:
        with connect(self.url, open_timeout=10) as ws:
            self.ws = ws
            self.opened.set()
            try:
                for raw in ws:
                    self.messages.append(json.loads(raw))
            except Exception:
                return

    def entries(self) -> list[dict[str, Any]]:
        return [e for m in list(self.messages) if m["type"] == "entries" for e in m["entries"]]

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.thread.join(10)


def key(e: dict[str, Any]) -> Key:
    return (e["protocol"], e["method"], e["path"], e["status"])


def all_entries(base: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/entries", params={"q": QUERY, "limit": 10_000}, timeout=20)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def test_hub_answers_the_union_of_two_nodes_and_survives_a_dead_worker(tmp_path: Path) -> None:
    with ExitStack() as stack:
        nodes = [Node(stack, "10.221.1.0/24", False), Node(stack, "10.221.2.0/24", True)]
        urls: list[str] = []
        procs = []
        for n, node in enumerate(nodes, 1):
            port = _free_port()
            argv = [*_worker_argv(), "-i", node.client.veth, "--capture", "afpacket"]
            argv += [
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / f"w{n}"),
                "--node",
                f"node{n}",
            ]
            url = f"http://127.0.0.1:{port}"
            procs.append(
                stack.enter_context(
                    process(argv, tmp_path / f"w{n}.log", f"serving {url} (node node{n}")
                )
            )
            urls.append(url)
        hub_port = _free_port()
        hub = f"http://127.0.0.1:{hub_port}"
        hub_argv = [
            sys.executable,
            "-m",
            "pilotfish",
            "hub",
            "--port",
            str(hub_port),
            "--timeout",
            "2",
        ]
        hub_proc = stack.enter_context(
            process(
                [*hub_argv, "--worker", urls[0], "--worker", urls[1]],
                tmp_path / "hub.log",
                f"pilotfish hub: serving {hub} (2 workers)",
            )
        )
        stream = StreamCollector(f"ws://127.0.0.1:{hub_port}/api/stream?q=http%20||%20dns")
        stack.callback(stream.close)
        wait_for(
            lambda: all(httpx.get(f"{u}/readyz", timeout=5).json()["clients"] == 1 for u in urls),
            "the hub's streams to reach both workers",
        )

        for node in nodes:
            node.send_plan()
        sent = nodes[0].sent + nodes[1].sent
        total = sum(sent.values())
        through_hub = wait_for(
            lambda: (lambda es: es if len(es) >= total else None)(all_entries(hub)), "entries"
        )
        per_worker = [all_entries(u) for u in urls]
        # REST: the union of the workers, newest first across them, and exactly the traffic
        assert Counter(key(e) for e in through_hub) == sent
        assert sorted(e["id"] for e in through_hub) == sorted(
            e["id"] for w in per_worker for e in w
        )
        stamps = [e["timestamp"] for e in through_hub]
        assert stamps == sorted(stamps, reverse=True)
        for n, answer in enumerate(per_worker):
            assert Counter(key(e) for e in answer) == nodes[n].sent
            assert all(e["id"].startswith(f"node{n + 1}-") for e in answer)
        # WS: the same entries
        wait_for(lambda: len(stream.entries()) >= total, "live entries")
        assert sorted(e["id"] for e in stream.entries()) == sorted(e["id"] for e in through_hub)
        # a filtered query and the stats agree with the workers too
        q = {"q": "http && status_code >= 300"}
        errors = httpx.get(f"{hub}/api/entries", params=q, timeout=20).json()["entries"]
        worker_errors = [
            e
            for u in urls
            for e in httpx.get(f"{u}/api/entries", params=q, timeout=20).json()["entries"]
        ]
        assert sorted(e["id"] for e in errors) == sorted(e["id"] for e in worker_errors)
        assert (
            len(errors)
            == sent[("http", "GET", "/missing", 404)] + sent[("http", "GET", "/redirect", 301)]
        )
        stats = httpx.get(
            f"{hub}/api/stats", params={"q": QUERY, "bucket": "1h"}, timeout=20
        ).json()
        assert sum(b["count"] for b in stats) == total

        # worker 2 dies mid-test
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(10)
        # a worker node's API process follows its killed supervisor a moment later
        wait_for(lambda: not _answers(urls[1]), "worker 2's API to go down with it")
        nodes[0].send_plan(rounds=1)
        node1_total = sum(nodes[0].sent.values())
        r = wait_for(
            lambda: (lambda r: r if len(r.json()["entries"]) >= node1_total else None)(
                httpx.get(f"{hub}/api/entries", params={"q": QUERY, "limit": 1000}, timeout=20)
            ),
            "node 1's entries while node 2 is dead",
        )
        assert Counter(key(e) for e in r.json()["entries"]) == nodes[0].sent
        assert r.headers[NOTICE_HEADER] == urls[1]
        states = {w["url"]: w["state"] for w in httpx.get(f"{hub}/api/workers", timeout=10).json()}
        assert states == {urls[0]: "up", urls[1]: "down"}
        ready = httpx.get(f"{hub}/readyz", timeout=10).json()
        assert ready["unavailable"] == [urls[1]] and ready["ready"] is True
        metrics = httpx.get(f"{hub}/metrics", timeout=10).text
        assert f'pilotfish_hub_worker_up{{worker="{urls[1]}"}} 0.0' in metrics
        wait_for(lambda: len(stream.entries()) >= total + 3, "node 1's live entries")
        notices = [m for m in stream.messages if m["type"] == "notice"]
        assert any(m["worker"] == urls[1] and m["state"] == "down" for m in notices)

        hub_proc.send_signal(signal.SIGTERM)
        assert hub_proc.wait(20) == 0
