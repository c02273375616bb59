"""Real servers on loopback for the dissector tests: nginx and dnsmasq, started and stopped
by PID, configured in a temporary directory, on free ports."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dissect.recorder import free_port

INDEX = b"<html><body>pilotfish test page</body></html>\n"
DATA_JSON = (
    b'{"items": [' + b", ".join(b'{"id": %d, "name": "item"}' % i for i in range(300)) + b"]}"
)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[int]:
    """An nginx on 127.0.0.1:<port> serving INDEX, DATA_JSON (gzip-able) and echoing POSTs."""
    if shutil.which("nginx") is None:
        pytest.skip("nginx not installed")
    port = free_port()
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "data.json").write_bytes(DATA_JSON)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""
user root;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    types {{ text/html html; application/json json; }}
    gzip on;
    gzip_min_length 100;
    gzip_types application/json;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /echo {{ return 201 "created\\n"; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield port
    finally:
        _stop(proc)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[int]:
    """A dnsmasq on 127.0.0.1:<port> answering svc.test with 10.1.2.3, nothing upstream."""
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            "dnsmasq",
            "--keep-in-foreground",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            f"--pid-file={tmp_path}/dnsmasq.pid",
            "--address=/svc.test/10.1.2.3",
            "--address=/gone.test/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield port
    finally:
        _stop(proc)
