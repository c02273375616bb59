"""`pilotfish read` against `tshark -T fields` and `tshark -T json` on one HTTP capture.

Targets (issue: offline pipeline): >= 50,000 HTTP transactions/s on one core, >= 3x
`tshark -T fields`, >= 10x `tshark -T json`, peak RSS < 200 MB whatever the file size.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import DATA, PILOTFISH, ROOT, Run, measure, table

CAPTURE = DATA / "http100k.pcap"


def ensure_capture(path: Path = CAPTURE, transactions: int = 100_000) -> Path:
    if not path.exists():
        print(f"bench: recording {transactions} HTTP transactions into {path} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "make_http_capture.py"),
                str(path),
                "--transactions",
                str(transactions),
            ],
            check=True,
        )
    return path


def packets_in(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if "Number of packets" in line:
            return int(line.split(":")[1].strip())
    return 0


def run(path: Path | None = None) -> str:
    path = ensure_capture() if path is None else path
    packets = packets_in(path)
    ours = measure([*PILOTFISH, "read", str(path), "--format", "jsonl", "-q"], count_lines=True)
    tx = ours.stdout_lines
    fields = measure(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "http.response",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
            "-e",
            "http.response.code",
            "-e",
            "http.time",
        ],
        count_lines=True,
    )
    as_json = measure(["tshark", "-r", str(path), "-Y", "http", "-T", "json"])
    rows = []
    runs: list[tuple[str, Run]] = [
        ("pilotfish read --format jsonl", ours),
        ("tshark -Y http -T fields", fields),
        ("tshark -Y http -T json", as_json),
    ]
    for name, r in runs:
        rows.append(
            [
                name,
                f"{r.wall:.2f}",
                f"{r.cpu:.2f}",
                f"{tx / r.wall:,.0f}",
                f"{tx / r.cpu:,.0f}" if r.cpu else "-",
                f"{packets / r.wall:,.0f}",
                f"{r.max_rss_mb:.0f}",
                f"{r.wall / ours.wall:.1f}x",
                r.returncode,
            ]
        )
    title = (
        f"read throughput: {path.name}, {packets:,} packets, {tx:,} entries "
        f"(tshark found {fields.stdout_lines:,} HTTP responses)"
    )
    header = [
        "command",
        "wall s",
        "cpu s",
        "tx/s",
        "tx per cpu-s",
        "pkt/s",
        "peak RSS MB",
        "pilotfish speedup",
        "rc",
    ]
    return table(title, header, rows)


if __name__ == "__main__":
    print(run(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
