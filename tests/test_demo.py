"""`pilotfish demo` end to end: real services in namespaces, captured and named."""

from __future__ import annotations

import os
import subprocess

import pytest

from pilotfish.config import Settings
from pilotfish.demo import run_demo
from pilotfish.model import Entry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_demo_shows_every_service_by_name_and_cleans_up() -> None:
    before = _namespaces()
    entries: list[Entry] = []
    result = run_demo(
        Settings(node="demo"), entries.append, requests=48, duration_s=10, log=lambda line: None
    )
    assert result.requests_ok == result.requests_sent == 48
    assert result.capture.error is None
    assert result.capture.backend == "afpacket"  # pfring absent, afxdp declines bridges
    assert result.read.error is None
    by_service = {(e.protocol, e.dst.service) for e in entries}
    assert {
        ("http", "cart-api"),
        ("http", "catalog"),
        ("dns", "kube-dns"),
        ("tcp", "redis"),
    } <= by_service
    http = [e for e in entries if e.protocol == "http"]
    assert all(e.src.pod == "frontend" and e.src.namespace == "shop" for e in http)
    assert {e.status for e in http} >= {200, 301, 404}
    assert any(e.method == "A" and e.status == "NXDOMAIN" for e in entries)
    assert [e.timestamp for e in entries] == sorted(e.timestamp for e in entries)
    # Nothing the demo made is left.  Its namespaces carry this process's PID (testbed naming);
    # other tests' namespaces may come and go meanwhile.
    mine = f"-{os.getpid()}-"
    assert {name for name in _namespaces() - before if mine in name} == set()
