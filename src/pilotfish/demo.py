"""`pilotfish demo`: the embedded demo cluster, its traffic captured and shown.

Builds the testbed's demo "node" (namespaces running nginx, a Python API, Redis and dnsmasq
on a bridge), captures the bridge with the best live backend while a bounded load loop runs
from the frontend pod, then prints the entries tagged with pod, namespace and service
names.  Everything it created is removed on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pilotfish.capture.base import CaptureOptions, SourceUnavailable
from pilotfish.config import Settings
from pilotfish.k8s.resolver import K8sResolver
from pilotfish.live import LiveOptions, LiveResult, Stopper, run_capture
from pilotfish.model import Entry
from pilotfish.offline import ReadResult, read_file
from pilotfish.testbed.demo import build_demo
from pilotfish.testbed.load import run_load
from pilotfish.testbed.naming import cleanup_stale
from pilotfish.testbed.netns import Testbed

_OPEN_TIMEOUT_S = 10.0
_SETTLE_S = 0.3


@dataclass
class DemoResult:
    capture: LiveResult
    read: ReadResult
    requests_sent: int
    requests_ok: int


class _Terminated(Exception):
    """SIGTERM arrived: unwind so the testbed is removed."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def run_demo(
    settings: Settings,
    emit: Callable[[Entry], None],
    requests: int = 200,
    duration_s: float = 10.0,
    backend: str = "best",
    log: Callable[[str], None] = lambda line: print(f"pilotfish: {line}", file=sys.stderr),
) -> DemoResult:
    """Run the whole demo once; see the module docstring."""
    old = signal.signal(signal.SIGTERM, _on_term)
    try:
        removed = cleanup_stale()
        if removed:
            log(f"removed leftovers of an earlier demo: {', '.join(removed)}")
        with Testbed() as tb, tempfile.TemporaryDirectory(prefix="pilotfish-demo-") as tmp:
            cluster = build_demo(tb)
            log(
                "demo cluster up: "
                + ", ".join(f"{p.namespace}/{p.name} {p.ip}" for p in cluster.pods.values())
            )
            pcap = Path(tmp) / "demo.pcap"
            stopper = Stopper()
            opened = threading.Event()
            outcome: list[LiveResult] = []

            def on_open(name: str, declined: list[SourceUnavailable]) -> None:
                for d in declined:
                    log(f"capture: {d.backend} declined: {d.reason}")
                log(f"capture: using {name} on {tb.bridge}")
                opened.set()

            def capture() -> None:
                options = CaptureOptions(interfaces=[tb.bridge], promiscuous=True)
                live = LiveOptions(backend=backend, write=pcap, duration=duration_s + 30)
                outcome.append(
                    run_capture(options, live, settings, lambda e: None, stopper, on_open)
                )
                opened.set()

            thread = threading.Thread(target=capture, name="demo-capture", daemon=True)
            thread.start()
            opened.wait(_OPEN_TIMEOUT_S)
            if outcome and outcome[0].error:
                raise RuntimeError(f"capture failed: {outcome[0].error}")
            load = run_load(tb, cluster.client, cluster.targets(), requests, duration_s)
            log(f"load: {load.sent} requests sent, {load.ok} answered in {load.elapsed_s:.1f}s")
            time.sleep(_SETTLE_S)  # let the ring hand over its last, partly filled block
            stopper.stop()
            thread.join(timeout=30)
            live_result = outcome[0] if outcome else LiveResult(error="capture did not finish")
            resolver = K8sResolver.from_lists(cluster.inventory.to_k8s())
            read = read_file(pcap, settings, emit, resolver=resolver)
            return DemoResult(live_result, read, load.sent, load.ok)
    finally:
        signal.signal(signal.SIGTERM, old)
