"""Start-up of the `pilotfish` command: `version`, and `read` of a 100-packet capture.

Target: both well under 150 ms.  Peers measured in the same run on the same small file:
the bare interpreter (`python -c pass`, the floor for any Python command), `tcpdump -r`
and `tshark -r`.  Each command runs RUNS times; the table keeps the fastest wall time and
the fastest CPU time (a busy machine only ever adds to either; CPU time is the steadier of
the two there), and the ratio of wall times to tshark's.

Python commands run with their bytecode cached, as after an install (`make install` compiles
it; here the cache lives in bench/data/pycache, so the numbers do not depend on that).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.common import DATA, PILOTFISH, Run, measure, table
from bench.read_throughput import ensure_capture, packets_in

RUNS = 10
SMALL = DATA / "http100.pcap"
PYCACHE = DATA / "pycache"


def small_capture(path: Path = SMALL) -> Path:
    """The first 100 packets (11 HTTP transactions) of the read benchmark's recording."""
    if not path.exists():
        source = ensure_capture()
        subprocess.run(["editcap", "-r", str(source), str(path), "1-100"], check=True)
    return path


def fastest(argv: list[str], env: Mapping[str, str] | None = None) -> tuple[Run, float]:
    """The run with the lowest wall time, and the lowest CPU time seen, over RUNS runs."""
    measure(argv, timeout=60, env=env)  # fills the bytecode cache where there is one
    done = [measure(argv, timeout=60, env=env) for _ in range(RUNS)]
    failed = [r for r in done if r.returncode != 0]
    if failed:
        raise RuntimeError(f"{' '.join(argv)} exited {failed[0].returncode}")
    return min(done, key=lambda r: r.wall), min(r.cpu for r in done)


def _bytecode_cached() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run(path: Path | None = None) -> str:
    path = small_capture() if path is None else path
    cached = _bytecode_cached()
    read = [*PILOTFISH, "read", str(path), "-o", "jsonl", "-q"]
    commands: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("python -c pass", [sys.executable, "-c", "pass"], cached),
        ("pilotfish version", [*PILOTFISH, "version"], cached),
        ("pilotfish read -o jsonl", read, cached),
        ("tcpdump -r", ["tcpdump", "-nn", "-r", str(path)], None),
        ("tshark -r", ["tshark", "-n", "-r", str(path)], None),
    ]
    measured = [(name, *fastest(argv, env)) for name, argv, env in commands]
    tshark_wall = measured[-1][1].wall
    rows = [
        (name, f"{best.wall * 1000:.1f}", f"{cpu * 1000:.1f}", f"{best.wall / tshark_wall:.2f}x")
        for name, best, cpu in measured
    ]
    return table(
        f"start-up on {path.name} ({packets_in(path)} packets), fastest of {RUNS} runs",
        ["command", "wall ms", "cpu ms", "wall vs tshark"],
        rows,
    )


if __name__ == "__main__":
    print(run(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
