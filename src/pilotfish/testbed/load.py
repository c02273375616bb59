"""Bounded load from a client pod to testbed services (the loop itself is `loadgen`).

`run_load` refuses any target whose address is outside the testbed subnet, runs the loop
inside the client pod as a tracked process, and kills it if it outlives its duration by
more than KILL_MARGIN_S.  Requests are capped by count AND time; the result says how many
were sent, answered and failed, per target.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.netns import Pod, Testbed
from pilotfish.testbed.procs import stop_process

KILL_MARGIN_S: Final = 10.0


@dataclass(frozen=True)
class LoadResult:
    sent: int
    ok: int
    errors: int
    elapsed_s: float
    per_target: dict[str, dict[str, int]]


def check_targets(subnet: ipaddress.IPv4Network, targets: Sequence[str]) -> list[str]:
    """The targets as given, after checking each points into the testbed subnet."""
    checked = []
    for url in targets:
        host = urlsplit(url).hostname or ""
        try:
            addr = ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"load target {url!r}: host must be a testbed IP address") from exc
        if addr not in subnet:
            raise ValueError(f"load target {url!r} is outside the testbed subnet {subnet}")
        checked.append(url)
    return checked


def spawn_load(
    testbed: Testbed,
    client_pod: Pod,
    targets: Sequence[str],
    requests: int,
    duration_s: float,
    pause_s: float = 0.0,
) -> subprocess.Popen[bytes]:
    """Start the bounded loop in the background; its JSON result arrives on stdout."""
    spec = {
        "targets": check_targets(testbed.subnet, targets),
        "requests": requests,
        "duration_s": duration_s,
        "pause_s": pause_s,
    }
    argv = [sys.executable, "-m", "pilotfish.testbed.loadgen", json.dumps(spec)]
    return testbed.spawn(client_pod, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_load(
    testbed: Testbed,
    client_pod: Pod,
    targets: Sequence[str],
    requests: int,
    duration_s: float,
    pause_s: float = 0.0,
) -> LoadResult:
    """Run the loop to its end (count or time, whichever first) and return its counts."""
    proc = spawn_load(testbed, client_pod, targets, requests, duration_s, pause_s)
    try:
        out, err = proc.communicate(timeout=duration_s + KILL_MARGIN_S)
    except subprocess.TimeoutExpired as exc:
        stop_process(proc)
        raise TestbedError(f"load generator overran {duration_s}s and was killed") from exc
    finally:
        testbed.stop(proc)
    if proc.returncode != 0:
        raise TestbedError(f"load generator failed ({proc.returncode}): {err.decode()[-500:]}")
    data = json.loads(out)
    return LoadResult(
        int(data["sent"]),
        int(data["ok"]),
        int(data["errors"]),
        float(data["elapsed_s"]),
        {k: {n: int(v) for n, v in c.items()} for k, c in data["per_target"].items()},
    )
