"""`--serve`: a capture file or a live capture behind the API, as the user starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pilotfish.api.app import STATIC_DIR
from pilotfish.cli import main
from pilotfish.serve import dashboard_dir
from tests.convo import TcpConversation, write_pcap
from tests.integration.nodes import free_port

C, S = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def test_dashboard_dir_prefers_a_built_checkout(tmp_path: Path) -> None:
    package = tmp_path / "src" / "pilotfish" / "__init__.py"
    package.parent.mkdir(parents=True)
    package.touch()
    packaged = STATIC_DIR if (STATIC_DIR / "index.html").is_file() else None
    assert dashboard_dir(str(package)) == packaged
    dist = tmp_path / "web" / "dist"
    dist.mkdir(parents=True)
    assert dashboard_dir(str(package)) == packaged  # no index.html: not a build
    (dist / "index.html").write_text("<html></html>")
    assert dashboard_dir(str(package)) == dist


def _capture(path: Path) -> Path:
    frames = []
    for i, target in enumerate(("/a", "/b", "/missing")):
        conv = TcpConversation(C, 40_000 + i, S, 80, ts=1_700_000_000.0 + i).handshake()
        conv.send(0, f"GET {target} HTTP/1.1\r\nHost: s\r\n\r\n".encode())
        status = b"404 Not Found" if target == "/missing" else b"200 OK"
        conv.send(1, b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
        frames += conv.close().frames
    return write_pcap(path, frames)


def _start(*args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-{os.getpid()}-{time.monotonic_ns()}"
    with log.open("wb") as err:
        argv = [sys.executable, "-m", "pilotfish", *args]
        proc = subprocess.Popen(argv, stderr=err, stdout=subprocess.DEVNULL)
    return proc, log


def _wait_serving(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 20
    while "serving" not in (text := log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, text
        time.sleep(0.05)
    return text


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        data: bytes = r.read()
        return data


def test_read_serve_serves_the_files_entries_and_packets(tmp_path: Path) -> None:
    pcap = _capture(tmp_path / "in.pcap")
    port = free_port()
    proc, log = _start("read", str(pcap), "--serve", "--port", str(port))
    try:
        text = _wait_serving(proc, log)
        assert f"serving http://127.0.0.1:{port} (3 entries from {pcap})" in text
        base = f"http://127.0.0.1:{port}"
        page = json.loads(_get(f"{base}/api/entries?q=status_code%20%3D%3D%20404"))
        assert [e["path"] for e in page["entries"]] == ["/missing"]
        exported = _get(f"{base}/api/export.pcap?q=status_code%20%3D%3D%20404")
        assert len(exported) > 24 + 9 * 16  # header + the 9 frames of that connection
        metrics = _get(f"{base}/metrics").decode()
        assert 'pilotfish_entries_total{protocol="http"} 3.0' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(20)
    assert code == 0, log.read_text()
    log.unlink()


def test_read_serve_refuses_what_it_cannot_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["read", str(tmp_path / "none.pcap"), "--serve"]) == 2
    assert "none.pcap" in capsys.readouterr().err
    assert main(["read", "x.pcap", "--serve", "--filter", "http"]) == 2
    assert "--serve stores every entry" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET needs root")
def test_capture_serve_runs_a_node_on_a_temporary_data_dir() -> None:
    port = free_port()
    argv = ["capture", "-i", "lo", "--capture", "afpacket", "--bpf", f"tcp port {port}"]
    proc, log = _start(*argv, "--serve", "--port", str(port))
    try:
        text = _wait_serving(proc, log)
        assert f"pilotfish capture: serving http://127.0.0.1:{port} (node local" in text
        _get(f"http://127.0.0.1:{port}/api/entries")  # the API's own traffic, captured
        deadline = time.monotonic() + 5
        while not json.loads(_get(f"http://127.0.0.1:{port}/api/entries?q=http"))["entries"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, log.read_text()
    log.unlink()


def test_capture_serve_rejects_options_that_do_not_apply(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["capture", "-i", "lo", "--serve", "-c", "5"]) == 2
    assert "--serve runs until Ctrl-C" in capsys.readouterr().err
