"""Record a real HTTP/1.1 keep-alive capture from the testbed for the read benchmarks.

    python bench/make_http_capture.py [OUT.pcap] [--transactions N] [--budget-s S]
                                      [--mixed MIXED.pcap]

Builds a testbed (offloads off, so frames look like wire traffic) with an nginx pod and a
client pod, records the client's bridge-side veth with tcpdump while `wrk -t2 -c16` fetches
/api/v1/items from the client pod, and repeats wrk (each run sized from the rate measured so
far) until wrk reports at least N completed requests or the time budget (default 60 s of
load) is spent.  tcpdump is stopped with SIGINT by PID; the file is then verified with
`tshark -Y http.response` and the count printed.  Exit status 1 if it holds fewer than N.
`--mixed` also records the demo cluster's mixed HTTP/DNS/Redis load into a second file.
Traffic never leaves the testbed bridge.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from pilotfish.testbed.demo import build_demo
from pilotfish.testbed.load import run_load
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.recorder import start_tcpdump, stop_tcpdump
from pilotfish.testbed.services import start_nginx

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "http100k.pcap"
_WRK_RE = re.compile(r"(\d+) requests in")
MIN_RUN_S = 1
WRK_MARGIN_S = 15.0


def count_http_responses(path: Path) -> int:
    """What tshark sees: `tshark -r FILE -Y http.response -T fields -e frame.number | wc -l`."""
    proc = subprocess.Popen(
        ["tshark", "-r", str(path), "-Y", "http.response", "-T", "fields", "-e", "frame.number"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    stdout = proc.stdout
    assert stdout is not None
    lines = 0
    while chunk := stdout.read(1 << 20):
        lines += chunk.count(b"\n")
    proc.wait()
    return lines


def record_http(out: Path, transactions: int, budget_s: float) -> int:
    with Testbed() as tb:
        server = tb.add_pod("nginx", "bench", {"app": "nginx"})
        client = tb.add_pod("client", "bench", {"app": "wrk"})
        nginx = start_nginx(tb, server, 80)
        url = f"http://{nginx.ip}/api/v1/items"
        rec = start_tcpdump(tb, client.veth, out)
        target = transactions + transactions // 50  # margin for requests cut at wrk's end
        done, spent, rate = 0, 0.0, 0.0
        while done < target and spent < budget_s:
            remaining = budget_s - spent
            want = 2.0 if rate == 0 else (target - done) / rate * 1.1 + 0.5
            seconds = max(MIN_RUN_S, min(int(want + 0.999), int(remaining)))
            if seconds > remaining:
                break
            argv = ["wrk", "-t2", "-c16", f"-d{seconds}s", url]
            started = time.monotonic()
            run = tb.run(client, argv, timeout=seconds + WRK_MARGIN_S)
            spent += time.monotonic() - started
            match = _WRK_RE.search(run.stdout.decode(errors="replace"))
            if run.returncode != 0 or match is None:
                print(f"wrk failed ({run.returncode}): {run.stderr.decode()[-400:]}")
                break
            done += int(match.group(1))
            rate = done / spent
            print(
                f"  wrk {seconds}s: {int(match.group(1)):,} requests (total {done:,})", flush=True
            )
        stats = stop_tcpdump(tb, rec)
    print(
        f"tcpdump: {stats.captured:,} packets captured, {stats.received:,} received by filter, "
        f"{stats.dropped:,} dropped by kernel; wrk completed {done:,} requests in {spent:.1f}s"
    )
    return done


def record_mixed(out: Path, requests: int = 3000, duration_s: float = 30.0) -> None:
    with Testbed() as tb:
        demo = build_demo(tb)
        rec = start_tcpdump(tb, demo.client.veth, out)
        result = run_load(tb, demo.client, demo.targets(), requests, duration_s)
        stats = stop_tcpdump(tb, rec)
    print(
        f"mixed: {result.sent:,} requests ({result.ok:,} ok, {result.errors:,} errors) in "
        f"{result.elapsed_s:.1f}s; {stats.captured:,} packets, {stats.dropped:,} dropped -> {out}"
    )


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds the with-blocks so the testbed is removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--budget-s", type=float, default=60.0, help="seconds of load at most")
    parser.add_argument("--mixed", type=Path, help="also record the demo's mixed load here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    out: Path = args.out
    wrk_done = record_http(out, args.transactions, args.budget_s)
    seen = count_http_responses(out)
    print(f"{out}: tshark sees {seen:,} HTTP responses (wanted >= {args.transactions:,})")
    if args.mixed is not None:
        record_mixed(args.mixed)
    if seen < args.transactions:
        print(f"short capture: wrk completed {wrk_done:,}, tshark saw {seen:,}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
