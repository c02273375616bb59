"""HTTP transactions captured live with dissection on, at stepped rates, beside tcpdump.

In a testbed of our own (a client pod and nginx in a web pod on a bridge), wrk drives HTTP/1.1
keep-alive GETs at stepped rates (N connections, each pausing a fixed time between requests,
through wrk's Lua `delay()`) while one capturer at a time listens: `pilotfish capture` with
the full pipeline (decode, flows, HTTP dissection, jsonl entries to /dev/null) on every
backend that can capture this traffic, and `tcpdump -w /dev/null`.  AF_PACKET, the PF_RING
stand-in and tcpdump capture the bridge (promiscuous); AF_XDP declines bridges, so it
captures the web pod's port of the bridge, which carries the same frames.

Per step: transactions offered (nginx's own access log), frames on the web pod's port (its
veth counters: the cross-check of what a capturer should see), frames received and dropped
by the kernel, HTTP entries produced, and the capturer's CPU seconds.  A step is clean when
nothing was dropped and (for pilotfish) entries == transactions.

Bounded: every step runs wrk for STEP_S seconds and is cut after STEP_TIMEOUT_S; the testbed
(namespaces, bridge, nginx, capturers, by PID) is removed at the end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import clean_up_to, table, wait_for_output
from pilotfish.capture.pfring import ENV_LIBRARY
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.pfring_standin import StandinError, build_standin
from pilotfish.testbed.services import Service, access_count, start_nginx

STEPS = ((2, 2), (8, 2), (32, 2), (64, 1), (128, 0))  # (connections, pause ms); 0: flat out
STEP_S = 3
STEP_TIMEOUT_S = 30.0
OPEN_TIMEOUT_S = 20.0
SETTLE_S = 0.3
CATCH_UP_LIMIT_S = 1.0  # longer means it fell behind and only the ring's depth saved it
PATH = "/api/v1/items"
BPF = "tcp port 80"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Capturer:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: bytes  # what its stderr says once it captures


@dataclass
class Step:
    capturer: str
    connections: int
    pause_ms: int
    rate: float  # transactions per second achieved
    transactions: int
    wire: int  # frames through the web pod's port (its veth counters)
    received: int
    dropped: int
    entries: int | None  # None: the capturer does not dissect
    cpu_s: float  # from capturing to the stop signal
    busy: float  # cpu_s over that wall time
    catch_up_s: float  # from the stop signal to the final report

    @property
    def clean(self) -> bool:
        whole = self.entries is None or self.entries == self.transactions
        return self.dropped == 0 and whole and self.catch_up_s < CATCH_UP_LIMIT_S


def _capturers(bridge: str, web_port: str, standin: Path | None) -> list[Capturer]:
    py = [sys.executable, "-m", "pilotfish", "capture", "--bpf", BPF, "--format", "jsonl"]
    using = b"capture: using"
    out = [
        Capturer("pilotfish afpacket", [*py, "-i", bridge, "-p", "--capture", "afpacket"], {}, using),
        Capturer(f"pilotfish afxdp ({web_port})", [*py, "-i", web_port, "--capture", "afxdp"], {}, using),
    ]  # fmt: skip
    if standin is not None:
        argv = [*py, "-i", bridge, "-p", "--capture", "pfring"]
        out.append(Capturer("pilotfish pfring STAND-IN", argv, {ENV_LIBRARY: str(standin)}, using))
    tcpdump = ["tcpdump", "-i", bridge, "-w", "/dev/null", "-n", BPF]
    out.append(Capturer("tcpdump -w /dev/null", tcpdump, {}, b"listening on"))
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def _veth_frames(port: str) -> int:
    stats = Path("/sys/class/net") / port / "statistics"
    return sum(int((stats / f"{d}_packets").read_text()) for d in ("rx", "tx"))


def _wrk(tb: Testbed, url: str, connections: int, pause_ms: int, script: Path) -> float:
    script.write_text(f"function delay()\n  return {pause_ms}\nend\n")
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{STEP_S}s", "-s", str(script), url]
    done = tb.run(tb.pod("client"), argv, timeout=STEP_S + STEP_TIMEOUT_S, check=True)
    match = re.search(rb"Requests/sec:\s+([\d.]+)", done.stdout)
    return float(match.group(1)) if match else 0.0


def _parse(capturer: str, err: str) -> tuple[int, int, int | None]:
    """(received, dropped, entries) from a capturer's closing report."""
    if capturer.startswith("tcpdump"):
        got = re.search(r"(\d+) packets? captured", err)
        lost = re.search(r"(\d+) packets? dropped by kernel", err)
        return int(got.group(1)) if got else 0, int(lost.group(1)) if lost else 0, None
    received = sum(int(n) for n in re.findall(r" received=(\d+)", err))
    # AF_XDP's if_dropped (the mirror veth's drops) and its XSK drops are the same frames
    dropped = sum(int(n) for n in re.findall(r" dropped=(\d+)", err))
    if_dropped = sum(int(n) for n in re.findall(r" if_dropped=(\d+)", err))
    dropped = max(dropped, if_dropped)
    http = re.search(r"entries \([^)]*\bhttp (\d+)", err)
    return received, dropped, int(http.group(1)) if http else 0


def _step(
    tb: Testbed, nginx: Service, web_port: str, cap: Capturer,
    connections: int, pause_ms: int, script: Path,
) -> Step:  # fmt: skip
    env = {**os.environ, **cap.env}
    proc = tb.spawn_host(cap.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        head = wait_for_output(proc, cap.ready, OPEN_TIMEOUT_S)
        start, cpu0 = time.monotonic(), _cpu_s(proc.pid)
        before = (access_count(nginx), _veth_frames(web_port))
        rate = _wrk(tb, f"{nginx.url}{PATH}", connections, pause_ms, script)
        time.sleep(SETTLE_S)
        after = (access_count(nginx), _veth_frames(web_port))
        cpu, stop = _cpu_s(proc.pid) - cpu0, time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=STEP_TIMEOUT_S)
        catch_up = time.monotonic() - stop
    finally:
        tb.stop(proc)
    report = (head + (err or b"")).decode(errors="replace")
    if os.environ.get("PILOTFISH_BENCH_VERBOSE"):
        print(f"--- {cap.name} {connections}x{pause_ms}ms\n{report}", file=sys.stderr)
    received, dropped, entries = _parse(cap.name, report)
    return Step(
        cap.name, connections, pause_ms, rate, after[0] - before[0], after[1] - before[1],
        received, dropped, entries, cpu, cpu / (stop - start), catch_up,
    )  # fmt: skip


def run(steps: Sequence[tuple[int, int]] = STEPS) -> str:
    if os.geteuid() != 0:
        return "capture http: needs root (network namespaces, raw sockets)"
    results: list[Step] = []
    with Testbed() as tb, tempfile.TemporaryDirectory() as tmp:
        try:
            standin: Path | None = build_standin(Path(tmp))
        except StandinError:
            standin = None
        tb.add_pod("client")
        web = tb.add_pod("web")
        nginx = start_nginx(tb, web, access_log=True)
        script = Path(tmp) / "pace.lua"
        for connections, pause_ms in steps:
            for cap in _capturers(tb.bridge, web.veth, standin):
                step = _step(tb, nginx, web.veth, cap, connections, pause_ms, script)
                results.append(step)
    return _table(results)


def _table(results: list[Step]) -> str:
    rows = []
    for name in dict.fromkeys(s.capturer for s in results):
        mine = [s for s in results if s.capturer == name]
        best = clean_up_to([(s.rate, s.clean) for s in sorted(mine, key=lambda s: s.rate)])
        for s in mine:
            rows.append([
                name, f"{s.connections}x{s.pause_ms}ms", f"{s.rate:,.0f}", s.transactions,
                "-" if s.entries is None else s.entries, s.wire, s.received, s.dropped,
                f"{s.cpu_s / (s.received or 1) * 1e6:.2f}", f"{s.busy:.0%}",
                f"{s.catch_up_s:.2f}", "yes" if s.clean else "NO",
                f"{best:,.0f}" if best else "-",
            ])  # fmt: skip
    header = [
        "capturer", "load", "tx/s", "transactions", "entries", "port frames", "received",
        "dropped", "cpu s/Mpkt", "busy", "stop s", "clean", "clean up to tx/s",
    ]  # fmt: skip
    return table(
        f"capture with HTTP dissection: wrk keep-alive GET {PATH}, {STEP_S} s per step "
        "(transactions from nginx's access log, port frames from the web pod's veth counters; "
        f"clean: no drops, entries == transactions, stopped within {CATCH_UP_LIMIT_S:.0f} s; "
        "PF_RING STAND-IN is the stand-in library on a plain AF_PACKET socket, not PF_RING)",
        header,
        rows,
    )


if __name__ == "__main__":
    print(run())
