"""The node supervisor: `pilotfish worker` as real processes capturing the loopback.

Traffic here is a plain HTTP server and client on 127.0.0.1 (loopback only); the testbed
runs are in tests/integration/test_worker_node.py.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotfish.cli import main
from pilotfish.node import describe_exit, feed_socket_path
from tests.integration.nodes import Node, free_port, niceness

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET needs root")


def test_describe_exit_names_codes_and_signals() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(2) == "exit code 2"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"
    assert describe_exit(None) == "still running"


def test_feed_socket_fits_in_sun_path(tmp_path: Path) -> None:
    assert feed_socket_path(tmp_path) == (tmp_path / "feed.sock").absolute()
    deep = tmp_path / ("d" * 120)
    path = feed_socket_path(deep)
    assert path.name == "feed.sock" and len(os.fsencode(path)) <= 100
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # usable as it is
    path.unlink()
    path.parent.rmdir()


@pytest.fixture
def web() -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 (its URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _lo_node(tmp_path: Path, web: str) -> Node:
    port = web.rsplit(":", 1)[1]
    return Node("lo", tmp_path / "data", "--bpf", f"tcp port {port}")


@needs_root
def test_entries_flow_from_capture_to_the_reniced_api_and_ctrl_c_stops_both(
    tmp_path: Path, web: str
) -> None:
    node = _lo_node(tmp_path, web)
    try:
        pids = node.pids()
        assert niceness(pids["api"]) - niceness(pids["capture"]) == 10
        for _ in range(3):
            try:
                urllib.request.urlopen(f"{web}/nothing-here", timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
        deadline = time.monotonic() + 5
        while len(node.entries("http && status_code == 404")) < 3:
            assert time.monotonic() < deadline, node.stderr
            time.sleep(0.1)
    finally:
        code = node.stop(signal.SIGINT, group=True)  # Ctrl-C: every process gets it
    assert code == 0, node.stderr
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert not (tmp_path / "data" / "feed.sock").exists()


@needs_root
def test_the_death_of_the_api_stops_capture_with_a_clear_message(tmp_path: Path, web: str) -> None:
    node = _lo_node(tmp_path, web)
    pids = node.pids()
    os.kill(pids["api"], signal.SIGKILL)
    code = node.proc.wait(20)
    assert code == 1
    assert "the API process ended (killed by SIGKILL); stopping the capture process" in (
        node.stderr
    )
    assert not Path(f"/proc/{pids['capture']}").exists()


@needs_root
def test_a_port_in_use_stops_the_worker_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["-i", "lo", "--capture", "afpacket", "--port", str(port)]
        done = _worker(*argv, "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 1
    assert "address already in use" in done.stderr
    assert "the API process ended (exit code 3); stopping the capture process" in done.stderr


def test_an_unavailable_capture_backend_exits_2_with_its_reason(tmp_path: Path) -> None:
    done = _worker(
        "-i", "lo", "--capture", "pfring", "--port", str(free_port()), "--data-dir", str(tmp_path)
    )
    assert done.returncode == 2
    assert "pilotfish worker: capture: pfring" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("-i", "lo", "--capture", "pcap"), "--capture must be"),
        (("-i", " , "), "-i needs at least one interface"),
        (("-i", "lo", "--bpf", "not a filter ("), "invalid capture filter"),
    ],
)
def test_usage_errors_exit_2_before_starting_anything(
    args: tuple[str, ...], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", *args]) == 2
    assert needle in capsys.readouterr().err


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pilotfish", "worker", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@needs_root
def test_children_follow_a_killed_supervisor(tmp_path: Path, web: str) -> None:
    node = _lo_node(tmp_path, web)
    pids = node.pids()
    node.proc.kill()  # SIGKILL: no chance to stop its children itself
    node.proc.wait(10)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in pids.values()):
        assert time.monotonic() < deadline, "children outlived the supervisor"
        time.sleep(0.1)
