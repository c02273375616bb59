"""Running `pilotfish worker` as a user does, for the integration tests and the benches.

`Node` starts the command as a subprocess, waits for its "serving" line, knows its two
children (capture and API, told apart by niceness), talks to its API and stops it by PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilotfish.testbed.netns import Pod, Testbed

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def niceness(pid: int) -> int:
    """The nice value of a process (field 19 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(t) for t in text)
    return found


class Node:
    """`pilotfish worker` in a subprocess (see the module docstring)."""

    def __init__(
        self,
        iface: str,
        data_dir: Path,
        *extra: str,
        node: str = "n1",
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "pilotfish", "worker", "-i", iface, "--capture"]
        argv += ["afpacket", "--port", str(self.port), "--data-dir", str(data_dir)]
        argv += ["--node", node, *extra]
        if wrap is not None:  # e.g. `testbed.limits.Limits.argv`: it execs, the PID stays
            argv = wrap(argv)
        self.log = data_dir.with_name(data_dir.name + ".stderr")
        with self.log.open("wb") as err:
            # a session of its own: a signal to its group reaches only the worker's processes
            self.proc = subprocess.Popen(argv, stderr=err, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "serving" not in self.stderr:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"worker did not start: {self.stderr}")
            time.sleep(0.05)

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """{"capture": pid, "api": pid}: the API process is the reniced one."""
        kids = children(self.proc.pid)
        by_nice = sorted(kids, key=niceness)
        assert len(by_nice) == 2, kids
        return {"capture": by_nice[0], "api": by_nice[1]}

    def get(self, path: str, **params: str) -> bytes:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as r:
            data: bytes = r.read()
            return data

    def entries(self, q: str = "", limit: int = 10_000) -> list[dict[str, Any]]:
        """Every entry matching `q`, newest first, following the cursors."""
        out: list[dict[str, Any]] = []
        before: str | None = None
        while True:
            params = {"q": q, "limit": str(limit)}
            if before is not None:
                params["before"] = before
            page = json.loads(self.get("/api/entries", **params))
            out.extend(page["entries"])
            before = page.get("older")
            if before is None or not page["entries"]:
                return out

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0, group: bool = False) -> int:
        """Send `signum` (to the worker's whole process group with `group`, as Ctrl-C in a
        terminal does) and wait for the exit code."""
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        return code


def wrk(tb: Testbed, client: Pod, url: str, seconds: float, connections: int = 2) -> str:
    """A bounded wrk run from inside the client pod; returns its report."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", url]
    done = tb.run(client, argv, timeout=seconds + 15)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def is_root() -> bool:
    return os.geteuid() == 0
