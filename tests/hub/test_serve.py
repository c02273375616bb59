"""`pilotfish hub` as a process: announces itself once serving, answers for its workers,
stops cleanly on SIGTERM and SIGINT; unusable arguments are exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.hub.conftest import Cluster, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hub(args: list[str], stderr: Path) -> subprocess.Popen[bytes]:
    with open(stderr, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "pilotfish", "hub", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_hub_serves_its_workers_and_stops_on_a_signal(
    cluster: Cluster, tmp_path: Path, sig: signal.Signals
) -> None:
    port = _free_port()
    err = tmp_path / "stderr"
    args = ["--worker", cluster.workers["a"], "--worker", cluster.workers["b"], "--port", str(port)]
    proc = _hub(args, err)
    try:
        line = f"pilotfish hub: serving http://127.0.0.1:{port} (2 workers)"
        wait_for(lambda: line in err.read_text(), "the serving line")
        r = httpx.get(f"http://127.0.0.1:{port}/api/entries", params={"limit": 1000}, timeout=10)
        assert len(r.json()["entries"]) == sum(len(v) for v in cluster.entries.values())
        proc.send_signal(sig)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--worker", "ftp://x"],
        ["--worker", "http://127.0.0.1:1", "--port", "0"],
        ["--worker", "http://127.0.0.1:1", "--timeout", "-1"],
    ],
)
def test_unusable_arguments_exit_2(args: list[str], tmp_path: Path) -> None:
    proc = _hub(args, tmp_path / "stderr")
    assert proc.wait(30) == 2
    assert (tmp_path / "stderr").read_text().strip()


def test_a_port_in_use_is_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = _hub(["--worker", "http://127.0.0.1:1", "--port", str(port)], tmp_path / "stderr")
        assert proc.wait(30) == 1
    assert f"cannot serve on 127.0.0.1:{port}" in (tmp_path / "stderr").read_text()
