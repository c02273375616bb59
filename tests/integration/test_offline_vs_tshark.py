"""`pilotfish read` on real traffic from real servers, with tshark as the second opinion.

One testbed (module scope): a client pod, nginx, the Python API (chunked and gzip answers,
POST echo) and dnsmasq.  curl and dig in the client pod make a known set of requests while
tcpdump records the client's link; pilotfish must report exactly those transactions, agree
with tshark on every request/response pair and DNS answer, and survive damaged copies of the
same capture without a crash.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilotfish.capture.base import LINKTYPE_ETHERNET
from pilotfish.capture.pcapfile import PcapFileSource, PcapWriter
from pilotfish.model import Frame
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.recorder import start_tcpdump, stop_tcpdump
from pilotfish.testbed.services import DNS_DOMAIN, start_api, start_dnsmasq, start_nginx

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

EXPECTED_HTTP = Counter(
    {
        ("GET", "/", 200): 2,  # keep-alive run + HTTP/1.0
        ("GET", "/api/v1/items", 200): 1,
        ("GET", "/missing", 404): 1,
        ("HEAD", "/", 200): 1,
        ("GET", "/redirect", 301): 1,
        ("GET", "/big", 200): 1,
        ("GET", "/chunked", 200): 1,
        ("GET", "/gzip", 200): 1,
        ("POST", "/echo", 200): 1,
    }
)


def read(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilotfish", "read", str(path), "--format", "jsonl", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def entries(path: Path, *args: str) -> list[dict[str, Any]]:
    r = read(path, *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def tshark(path: Path, display: str, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE", "-Y", display]
    argv += ["-T", "fields", "-E", "separator=|"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("|") for line in out.splitlines()]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    path = tmp_path_factory.mktemp("vs-tshark") / "traffic.pcap"
    with Testbed() as tb:
        client = tb.add_pod("client")
        web, api, dns = tb.add_pod("web"), tb.add_pod("api"), tb.add_pod("dns")
        start_nginx(tb, web)
        start_api(tb, api, 8080)
        start_dnsmasq(tb, dns)
        rec = start_tcpdump(tb, client.veth, path)
        w, a = f"http://{web.ip}", f"http://{api.ip}:8080"
        curls = [
            [f"{w}/", f"{w}/api/v1/items", f"{w}/missing"],  # one keep-alive connection
            ["-I", f"{w}/"],
            ["-0", f"{w}/"],
            [f"{w}/redirect"],
            [f"{w}/big"],
            [f"{a}/chunked"],
            [f"{a}/gzip"],
            ["-X", "POST", "-H", "Content-Type: text/plain", "-d", "hello pilotfish", f"{a}/echo"],
        ]
        for args in curls:
            r = tb.run(client, ["curl", "-s", "-o", "/dev/null", "--max-time", "5", *args])
            assert r.returncode == 0, args
        digs = [
            ["A", f"web.default.{DNS_DOMAIN}"],
            ["AAAA", f"api.{DNS_DOMAIN}"],
            ["TXT", f"info.{DNS_DOMAIN}"],
            ["A", f"nowhere.{DNS_DOMAIN}"],
            ["A", f"dns.default.{DNS_DOMAIN}", "+tcp"],
        ]
        for args in digs:
            qtype, name, *rest = args
            r = tb.run(client, ["dig", f"@{dns.ip}", "+tries=1", "+time=3", name, qtype, *rest])
            assert r.returncode == 0, args
        stop_tcpdump(tb, rec)
        yield path, {"client": client.ip, "web": web.ip, "api": api.ip, "dns": dns.ip}


def test_http_transactions_exactly(capture: tuple[Path, dict[str, str]]) -> None:
    path, ips = capture
    docs = entries(path)
    http = [d for d in docs if d["protocol"] == "http"]
    assert Counter((d["method"], d["path"], d["status"]) for d in http) == EXPECTED_HTTP
    assert [d["timestamp"] for d in docs] == sorted(d["timestamp"] for d in docs)
    for d in http:
        assert d["src"]["ip"] == ips["client"]
        assert d["dst"]["ip"] in (ips["web"], ips["api"])
        assert d["dst"]["port"] in (80, 8080)
        assert 0 < d["elapsed_us"] < 5_000_000
        assert d["flags"] == []
    by_path = {(d["method"], d["path"]): d for d in http}
    chunked = by_path[("GET", "/chunked")]["response"]
    assert json.loads(chunked["body"])["items"][0]["id"] == 1
    assert chunked["headers"]["transfer-encoding"] == "chunked"
    gz = by_path[("GET", "/gzip")]["response"]
    assert json.loads(gz["body"])["compressed"] is True
    assert gz["headers"]["content-encoding"] == "gzip"
    echo = by_path[("POST", "/echo")]
    assert echo["request"]["body"] == echo["response"]["body"] == "hello pilotfish"
    head = by_path[("HEAD", "/")]["response"]
    assert head.get("body", "") == "" and int(head["headers"]["content-length"]) > 0
    big = by_path[("GET", "/big")]["response"]
    assert big["body_size"] == 100 * 1024 and big["truncated"] is True  # kept: 64 KiB
    assert big["encoding"] == "base64" and len(big["body"]) == 4 * (65536 + 2) // 3
    assert big["size"] > 100 * 1024
    assert by_path[("GET", "/")]["response"]["version"] in ("HTTP/1.0", "HTTP/1.1")


def test_http_pairs_agree_with_tshark(capture: tuple[Path, dict[str, str]]) -> None:
    path, _ = capture
    requests = {
        row[0]: (row[1], row[2])
        for row in tshark(
            path, "http.request", "frame.number", "http.request.method", "http.request.uri"
        )
    }
    pairs = Counter()
    for request_in, code in tshark(path, "http.response", "http.request_in", "http.response.code"):
        method, uri = requests[request_in]
        pairs[(method, uri, int(code))] += 1
    ours = Counter(
        (d["method"], d["path"], d["status"])
        for d in entries(path, "-q")
        if d["protocol"] == "http"
    )
    assert ours == pairs


def test_dns_agrees_with_tshark(capture: tuple[Path, dict[str, str]]) -> None:
    path, _ = capture
    dns = [d for d in entries(path) if d["protocol"] == "dns"]
    ours = Counter((d["path"], d["method"], d["status"]) for d in dns)
    rcodes = {0: "NOERROR", 3: "NXDOMAIN"}
    qtypes = {1: "A", 28: "AAAA", 16: "TXT"}
    theirs = Counter(
        (name, qtypes[int(qtype)], rcodes[int(rcode)])
        for resp, _id, name, qtype, rcode in tshark(
            path,
            "dns && !icmp",
            "dns.flags.response",
            "dns.id",
            "dns.qry.name",
            "dns.qry.type",
            "dns.flags.rcode",
        )
        if resp in ("1", "True")
    )
    assert ours == theirs
    assert len(dns) == 5
    nx = [d for d in dns if d["status"] == "NXDOMAIN"]
    assert [d["path"] for d in nx] == [f"nowhere.{DNS_DOMAIN}"]
    aaaa = next(d for d in dns if d["method"] == "AAAA")
    assert aaaa["response"]["answers"][0]["data"] == "fd00:213::1"
    assert any(d["dst"]["port"] == 53 and d["request"]["size"] > 0 for d in dns)


# --- damaged copies ----------------------------------------------------------------------------


def frames_of(path: Path) -> list[Frame]:
    source = PcapFileSource(path)
    source.open()
    out = [f for batch in source.batches() for f in batch]
    source.close()
    return out


def write(path: Path, frames: list[Frame], snaplen: int = 262144) -> Path:
    with PcapWriter(path, LINKTYPE_ETHERNET, snaplen=snaplen) as w:
        for ts, _lt, data, wirelen in frames:
            w.write(ts, data, wirelen)
    return path


def http_set(docs: list[dict[str, Any]]) -> Counter[tuple[str, str, int]]:
    return Counter((d["method"], d["path"], d["status"]) for d in docs if d["protocol"] == "http")


def test_reordered_and_duplicated_frames_give_the_same_entries(
    capture: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    frames = frames_of(capture[0])
    shuffled = list(frames)
    i = 0
    while i + 1 < len(shuffled):  # swap neighbours sent by the same host: out of order
        if shuffled[i][2][26:30] == shuffled[i + 1][2][26:30]:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
            i += 1
        i += 1
    assert shuffled != frames
    assert http_set(entries(write(tmp_path / "r.pcap", shuffled))) == EXPECTED_HTTP
    doubled = [f for frame in frames for f in (frame, frame)]
    assert http_set(entries(write(tmp_path / "d.pcap", doubled))) == EXPECTED_HTTP


def test_vlan_tagged_and_gzip_copies_give_the_same_entries(
    capture: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    frames = frames_of(capture[0])
    tag = struct.pack("!HH", 0x8100, 42)
    qinq = struct.pack("!HH", 0x88A8, 7) + tag
    for name, inserted in (("vlan", tag), ("qinq", qinq)):
        tagged = [
            (ts, lt, d[:12] + inserted + d[12:], w + len(inserted)) for ts, lt, d, w in frames
        ]
        assert http_set(entries(write(tmp_path / f"{name}.pcap", tagged))) == EXPECTED_HTTP
    packed = tmp_path / "g.pcap.gz"
    packed.write_bytes(gzip.compress(capture[0].read_bytes()))
    assert http_set(entries(packed)) == EXPECTED_HTTP


def _server_segments(frames: list[Frame], port: int) -> list[int]:
    """Indexes of full-size segments sent from `port` (the /big response's body)."""
    return [
        i
        for i, f in enumerate(frames)
        if len(f[2]) > 1400 and struct.unpack_from("!H", f[2], 34)[0] == port
    ]


@pytest.mark.parametrize("which", ["middle", "first"])
def test_a_lost_segment_marks_one_entry_and_spares_the_rest(
    capture: tuple[Path, dict[str, str]], tmp_path: Path, which: str
) -> None:
    frames = frames_of(capture[0])
    segments = _server_segments(frames, 80)
    victim = segments[3] if which == "middle" else segments[0]  # [0] holds the headers
    docs = entries(write(tmp_path / "lost.pcap", frames[:victim] + frames[victim + 1 :]))
    http = [d for d in docs if d["protocol"] == "http"]
    flagged = [d for d in http if "gap" in d["flags"]]
    assert [d["path"] for d in flagged] == ["/big"]
    if which == "middle":  # the hole is skipped: the response is still there
        assert flagged[0]["status"] == 200
        assert flagged[0]["response"]["body_size"] == 100 * 1024 - 1448  # the bytes seen
    else:  # the status line was in the hole: the request stands alone, marked
        assert flagged[0]["status"] is None and "no-response" in flagged[0]["flags"]
    others = [d for d in http if d["path"] != "/big"]
    assert http_set(others) == EXPECTED_HTTP - Counter({("GET", "/big", 200): 1})


@pytest.mark.parametrize("kind", ["truncated", "snaplen96", "garbage-tail", "random"])
def test_damage_never_crashes(
    capture: tuple[Path, dict[str, str]], tmp_path: Path, kind: str
) -> None:
    data = capture[0].read_bytes()
    path = tmp_path / f"{kind}.pcap"
    if kind == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "snaplen96":
        subprocess.run(["editcap", "-s", "96", str(capture[0]), str(path)], check=True)
    elif kind == "garbage-tail":
        path.write_bytes(data[:24] + random.Random(1).randbytes(20_000))
    else:
        path.write_bytes(random.Random(2).randbytes(50_000))
    r = read(path)
    assert "Traceback" not in r.stderr
    assert r.returncode in (0, 2)
    for line in r.stdout.splitlines():
        json.loads(line)
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()[-1]) < 300
    if kind == "truncated":
        assert r.returncode == 2 and str(path) in r.stderr and r.stdout
    if kind == "random":
        assert r.returncode == 2 and "neither pcap nor pcapng" in r.stderr
