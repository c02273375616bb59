"""Recorded scenarios for the `pilotfish read` end-to-end tests, and the tools to judge them.

Two scenarios, each built in its own testbed (network namespaces on a private bridge, no
route out) that is removed as soon as the recording is on disk:

- HTTP: a client pod runs a fixed plan of curl commands against nginx (`web`) and the
  testbed's Python API (`api`); tcpdump on the client's host-side veth records Ethernet.
- DNS: the client runs dig against dnsmasq (`dns`) over UDP and TCP; tcpdump records the
  client's veth (Ethernet) and, inside the dns pod, `any` (Linux cooked capture).

Every plan step says which transactions it must produce, so the tests compare pilotfish with
the plan *and* with tshark reading the same file.  All traffic stays between the pods of
the testbed; every command runs inside a pod with a timeout.

Also here: running `pilotfish read` as a subprocess, running tshark, reading and writing
frames for the damaged copies, and an entry key for comparing two runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from pilotfish.capture.pcapfile import PcapFileSource, PcapWriter
from pilotfish.model import Frame
from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.load import LoadResult, run_load
from pilotfish.testbed.netns import Pod, Testbed
from pilotfish.testbed.recorder import Recording, start_tcpdump, stop_tcpdump
from pilotfish.testbed.services import DNS_DOMAIN, start_api, start_dnsmasq, start_nginx

ROOT_ONLY: Final = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("tcpdump") is None or shutil.which("tshark") is None,
    reason="needs root (network namespaces), tcpdump and tshark",
)
READ_TIMEOUT_S: Final = 120.0
CLIENT_TIMEOUT_S: Final = 10.0
API_PORT: Final = 8080
POST_BODY: Final = "hello pilotfish, a posted body"
SLOW_MS: Final = 150

Txn = tuple[str, str, int | str]
"""(method, path, status) of one expected transaction."""


@dataclass(frozen=True)
class Step:
    """One client command (curl or dig argv with {web}/{api}/{dns} placeholders) and the
    transactions it must produce, in order, on one connection (or one UDP conversation)."""

    argv: tuple[str, ...]
    expect: tuple[Txn, ...]


def _curl(*args: str) -> tuple[str, ...]:
    return ("curl", "-sS", "-o", "/dev/null", "--max-time", "5", *args)


HTTP_PLAN: Final = (
    Step(
        _curl("{web}/", "{web}/api/v1/items", "{web}/missing"),  # keep-alive, three requests
        (("GET", "/", 200), ("GET", "/api/v1/items", 200), ("GET", "/missing", 404)),
    ),
    Step(_curl("-I", "{web}/"), (("HEAD", "/", 200),)),
    Step(_curl("-0", "{web}/api/v1/items"), (("GET", "/api/v1/items", 200),)),
    Step(_curl("{web}/redirect"), (("GET", "/redirect", 301),)),
    Step(_curl("{web}/big"), (("GET", "/big", 200),)),
    Step(_curl("{api}/chunked"), (("GET", "/chunked", 200),)),
    Step(_curl("{api}/gzip"), (("GET", "/gzip", 200),)),
    Step(_curl("--compressed", "{api}/gzip?accept=1"), (("GET", "/gzip?accept=1", 200),)),
    Step(
        _curl(
            "-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", POST_BODY, "{api}/echo"
        ),
        (("POST", "/echo", 200),),
    ),
    Step(
        _curl("{api}/api/v1/cart?user=alice", "{api}/nope"),
        (("GET", "/api/v1/cart?user=alice", 200), ("GET", "/nope", 404)),
    ),
    Step(_curl(f"{{api}}/slow?ms={SLOW_MS}"), (("GET", f"/slow?ms={SLOW_MS}", 200),)),
)

DNS_NAMES: Final = {
    "client": f"client.default.{DNS_DOMAIN}",
    "api": f"api.{DNS_DOMAIN}",
    "info": f"info.{DNS_DOMAIN}",
    "nowhere": f"nowhere.{DNS_DOMAIN}",
}


def _dig(name: str, qtype: str, *extra: str) -> tuple[str, ...]:
    return ("dig", "@{dns}", "+tries=1", "+time=3", name, qtype, *extra)


DNS_PLAN: Final = (
    Step(_dig(DNS_NAMES["client"], "A"), (("A", DNS_NAMES["client"], "NOERROR"),)),
    Step(_dig(DNS_NAMES["api"], "AAAA"), (("AAAA", DNS_NAMES["api"], "NOERROR"),)),
    Step(_dig(DNS_NAMES["info"], "TXT"), (("TXT", DNS_NAMES["info"], "NOERROR"),)),
    Step(_dig(DNS_NAMES["nowhere"], "A"), (("A", DNS_NAMES["nowhere"], "NXDOMAIN"),)),
    Step(_dig(DNS_NAMES["api"], "A", "+tcp"), (("A", DNS_NAMES["api"], "NOERROR"),)),
    Step(_dig(DNS_NAMES["info"], "TXT", "+tcp"), (("TXT", DNS_NAMES["info"], "NOERROR"),)),
    Step(
        _dig(DNS_NAMES["nowhere"], "AAAA", "+tcp"),
        (("AAAA", DNS_NAMES["nowhere"], "NXDOMAIN"),),
    ),
)
DNS_TCP_STEPS: Final = 3  # the last steps of DNS_PLAN use +tcp


def expected(plan: tuple[Step, ...]) -> Counter[Txn]:
    """The multiset of transactions a plan must produce."""
    return Counter(t for step in plan for t in step.expect)


@dataclass(frozen=True)
class HttpCapture:
    path: Path  # Ethernet, client veth
    client: str
    web: str
    api: str
    offloads: bool = False


@dataclass(frozen=True)
class DnsCapture:
    path: Path  # Ethernet, client veth
    cooked: Path  # Linux cooked (tcpdump -i any inside the dns pod)
    client: str
    dns: str


def record_http(workdir: Path, offloads: bool = False) -> HttpCapture:
    """Build the HTTP testbed, run HTTP_PLAN from the client pod, return the recording.

    With `offloads` the veths keep TSO/GSO/GRO and checksum offload on, as real hosts do:
    the recording then holds segments bigger than the MTU and wrong TCP checksums.
    """
    path = workdir / "http.pcap"
    with Testbed(offloads=offloads) as tb:
        client, web, api = tb.add_pod("client"), tb.add_pod("web"), tb.add_pod("api")
        start_nginx(tb, web)
        start_api(tb, api, API_PORT)
        rec = start_tcpdump(tb, client.veth, path)
        urls = {"web": f"http://{web.ip}", "api": f"http://{api.ip}:{API_PORT}"}
        _run_plan(tb, client, HTTP_PLAN, urls)
        stats = stop_tcpdump(tb, rec)
    _check_recording(stats.dropped, path)
    return HttpCapture(path, client.ip, web.ip, api.ip, offloads)


def record_dns(workdir: Path) -> DnsCapture:
    """Build the DNS testbed, run DNS_PLAN from the client pod, return both recordings."""
    path, cooked = workdir / "dns.pcap", workdir / "dns-any.pcap"
    with Testbed() as tb:
        client, dns = tb.add_pod("client"), tb.add_pod("dns")
        start_dnsmasq(tb, dns)
        rec = start_tcpdump(tb, client.veth, path)
        inside = _tcpdump_in_pod(tb, dns, cooked)
        _run_plan(tb, client, DNS_PLAN, {"dns": dns.ip})
        stats = stop_tcpdump(tb, rec)
        inside_stats = stop_tcpdump(tb, inside, settle_s=0)
    _check_recording(stats.dropped + inside_stats.dropped, path)
    return DnsCapture(path, cooked, client.ip, dns.ip)


LOAD_REQUESTS: Final = 400
LOAD_SECONDS: Final = 20.0


@dataclass(frozen=True)
class LoadCapture:
    path: Path  # Ethernet, client veth
    load: LoadResult
    expect: dict[str, Txn]  # target URL -> the transaction each of its answers makes


def record_load(workdir: Path) -> LoadCapture:
    """The testbed's bounded load loop (LOAD_REQUESTS or LOAD_SECONDS, whichever first)
    round robin over nginx, two API endpoints and dnsmasq, recorded on the client veth."""
    path = workdir / "load.pcap"
    with Testbed() as tb:
        client, web, api, dns = (tb.add_pod(n) for n in ("client", "web", "api", "dns"))
        start_nginx(tb, web)
        start_api(tb, api, API_PORT)
        start_dnsmasq(tb, dns)
        expect: dict[str, Txn] = {
            f"http://{web.ip}/": ("GET", "/", 200),
            f"http://{api.ip}:{API_PORT}/api/v1/cart?user=load": (
                "GET",
                "/api/v1/cart?user=load",
                200,
            ),
            f"http://{api.ip}:{API_PORT}/chunked": ("GET", "/chunked", 200),
            f"dns://{dns.ip}/{DNS_NAMES['api']}?type=AAAA": ("AAAA", DNS_NAMES["api"], "NOERROR"),
        }
        rec = start_tcpdump(tb, client.veth, path)
        load = run_load(tb, client, list(expect), LOAD_REQUESTS, LOAD_SECONDS)
        stats = stop_tcpdump(tb, rec)
    _check_recording(stats.dropped, path)
    return LoadCapture(path, load, expect)


def _run_plan(tb: Testbed, client: Pod, plan: tuple[Step, ...], where: dict[str, str]) -> None:
    for step in plan:
        argv = [arg.format(**where) for arg in step.argv]
        done = tb.run(client, argv, timeout=CLIENT_TIMEOUT_S)
        if done.returncode != 0:
            raise TestbedError(f"{argv} failed: {done.stderr.decode(errors='replace')[-300:]}")


def _tcpdump_in_pod(tb: Testbed, pod: Pod, path: Path) -> Recording:
    """tcpdump on `any` inside the pod (Linux cooked frames), started like the recorder's."""
    log = path.with_name(path.name + ".tcpdump.log")
    argv = ["tcpdump", "-i", "any", "-w", str(path), "-s", "0", "-n", "-Z", "root"]
    with log.open("wb") as out:
        proc = tb.spawn(pod, argv, stdout=subprocess.DEVNULL, stderr=out)
    deadline = time.monotonic() + 5.0
    while b"listening on" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise TestbedError(f"tcpdump in {pod.name}: {log.read_text(errors='replace')}")
        time.sleep(0.02)
    return Recording(proc, path, log)


def _check_recording(dropped: int, path: Path) -> None:
    if dropped:
        raise TestbedError(f"tcpdump dropped {dropped} packets recording {path}")


# --- running pilotfish and tshark ------------------------------------------------------------


def read(path: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pilotfish read PATH --format jsonl ARGS` as a subprocess (a later --format wins)."""
    argv = [sys.executable, "-m", "pilotfish", "read", str(path), "--format", "jsonl", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=READ_TIMEOUT_S)


def parse_jsonl(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def entries(path: Path | str, *args: str) -> list[dict[str, Any]]:
    """The entries of a clean run; fails the test on a non-zero exit or a traceback."""
    done = read(path, *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return parse_jsonl(done.stdout)


def tshark(path: Path, display: str, *fields: str, two_pass: bool = False) -> list[list[str]]:
    """tshark's fields (first occurrence each) for frames matching `display`."""
    argv = ["tshark", "-n", "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE"]
    if two_pass:
        argv.append("-2")
    argv += ["-Y", display, "-T", "fields", "-E", "occurrence=f"]
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


def txn(entry: dict[str, Any]) -> Txn:
    return (entry["method"], entry["path"], entry["status"])


def txns(docs: list[dict[str, Any]], protocol: str) -> Counter[Txn]:
    return Counter(txn(d) for d in docs if d["protocol"] == protocol)


def content_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What must not change when the same traffic is stored or framed differently:
    endpoints, request line, status, sizes, bodies and flags (not ids or capture details)."""
    sides = []
    for side in ("request", "response"):
        p = entry.get(side) or {}
        sides.append((p.get("size"), p.get("body_size"), p.get("body"), p.get("answers")))
    return (
        entry["protocol"],
        entry["src"]["ip"],
        entry["src"]["port"],
        entry["dst"]["ip"],
        entry["dst"]["port"],
        *txn(entry),
        *sides,
        tuple(entry["flags"]),
    )


# --- frames, for damaged copies ---------------------------------------------------------------


def frames_of(path: Path) -> list[Frame]:
    source = PcapFileSource(path)
    source.open()
    try:
        return [frame for batch in source.batches() for frame in batch]
    finally:
        source.close()


def write_pcap(path: Path, frames: list[Frame], linktype: int) -> Path:
    with PcapWriter(path, linktype) as writer:
        writer.write_frames(frames)
    return path
