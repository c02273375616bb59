"""recorder: tcpdump started and stopped by PID on a pod's veth, and its counters parsed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.recorder import parse_counters, start_tcpdump, stop_tcpdump
from pilotfish.testbed.services import start_api
from tests.testbed.conftest import NEEDS_ROOT

CLOSING = """listening on x, link-type EN10MB (Ethernet), snapshot length 262144 bytes
1,234 packets captured
1240 packets received by filter
6 packets dropped by kernel
"""


def test_parse_counters() -> None:
    stats = parse_counters(CLOSING.replace("1,234", "1234"))
    assert (stats.captured, stats.received, stats.dropped) == (1234, 1240, 6)
    assert parse_counters("1 packet captured\n").captured == 1
    assert parse_counters("") == parse_counters("garbage\x00\n")


@given(st.text(max_size=200))
def test_parse_counters_never_crashes(text: str) -> None:
    stats = parse_counters(text)
    assert min(stats.captured, stats.received, stats.dropped) >= 0


@NEEDS_ROOT
@pytest.mark.integration
def test_records_pod_traffic(testbed: Testbed, tmp_path: Path) -> None:
    server = testbed.add_pod("server")
    client = testbed.add_pod("client")
    api = start_api(testbed, server)
    rec = start_tcpdump(testbed, client.veth, tmp_path / "x.pcap", "tcp port 8080")
    for _ in range(3):
        assert testbed.run(client, ["curl", "-s", f"{api.url}/healthz"]).stdout == b"ok"
    stats = stop_tcpdump(testbed, rec)
    assert stats.captured >= 3 * 6 and stats.dropped == 0
    assert rec.proc.returncode == 0 and rec.proc.pid not in testbed.procs.pids
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(rec.path),
            "-Y",
            "http.response",
            "-T",
            "fields",
            "-e",
            "http.response.code",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["200", "200", "200"]
