"""capture/mirror.py: naming, parsing tc's JSON, and the tc mirror set-up/teardown for real.

The integration tests build two private network namespaces joined by a veth pair (random
names, IPv6 off, static neighbours) and run the mirror code inside the client namespace in a
child process (`ip netns exec`), so nothing outside the test's namespaces is touched.
`NsPair`/`ns_pair` are also used by test_afxdp.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.capture.base import LINKTYPE_ETHERNET
from pilotfish.capture.bpf import compile_filter
from pilotfish.capture.mirror import (
    IFNAMSIZ,
    MIRROR_PREF,
    is_mirror_name,
    mirror_names,
    parse_filter_prefs,
    parse_qdisc_kinds,
)

TIMEOUT = 60

# --- a private pair of namespaces ------------------------------------------------------------


@dataclass
class NsPair:
    """Namespaces `client` and `server`, joined by `client_if` <-> `server_if`."""

    client: str
    server: str
    client_if: str
    server_if: str
    client_ip: str
    server_ip: str

    def run(self, ns: str, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd}: {proc.stderr}")
        return proc.stdout

    def python(self, ns: str, script: str, *args: str) -> str:
        return self.run(ns, sys.executable, "-c", script, *args)

    def links(self) -> list[str]:
        out = json.loads(self.run(self.client, "ip", "-j", "-d", "link", "show"))
        return [str(link["ifname"]) for link in out]

    def xdp_links(self) -> list[str]:
        out = json.loads(self.run(self.client, "ip", "-j", "-d", "link", "show"))
        return [str(link["ifname"]) for link in out if "xdp" in link]

    def qdisc_kinds(self) -> set[str]:
        return parse_qdisc_kinds(self.run(self.client, "tc", "-j", "qdisc", "show"))

    def filter_prefs(self, direction: str) -> set[int]:
        cmd = ("tc", "-j", "filter", "show", "dev", self.client_if, direction)
        return parse_filter_prefs(self.run(self.client, *cmd))


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=TIMEOUT)


@contextlib.contextmanager
def ns_pair() -> Iterator[NsPair]:
    tag = secrets.token_hex(3)
    octet2, octet3 = 200 + secrets.randbelow(50), secrets.randbelow(64) * 4
    pair = NsPair(
        client=f"pfxtc-{tag}",
        server=f"pfxts-{tag}",
        client_if=f"vc{tag}",
        server_if=f"vs{tag}",
        client_ip=f"10.{octet2}.{octet3}.1",
        server_ip=f"10.{octet2}.{octet3}.2",
    )
    try:
        for ns in (pair.client, pair.server):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        peer = ("peer", "name", pair.server_if, "netns", pair.server)
        _sh("ip", "-n", pair.client, "link", "add", pair.client_if, "type", "veth", *peer)
        sides = (
            (pair.client, pair.client_if, pair.client_ip),
            (pair.server, pair.server_if, pair.server_ip),
        )
        for ns, ifname, ip in sides:
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", ifname)
            _sh("ip", "-n", ns, "link", "set", ifname, "up")
        macs = {ns: _mac(ns, ifname) for ns, ifname, _ in sides}
        # static neighbours: no ARP chatter in the captures
        for (ns, ifname, _), (other, _, other_ip) in zip(sides, reversed(sides), strict=True):
            neigh = (other_ip, "lladdr", macs[other], "dev", ifname, "nud", "permanent")
            _sh("ip", "-n", ns, "neigh", "replace", *neigh)
        yield pair
    finally:
        for ns in (pair.client, pair.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=TIMEOUT)


_UDP_SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(5)
print("ready", flush=True)
n = 0
try:
    while n < int(sys.argv[2]):
        s.recv(2048)
        n += 1
except TimeoutError:
    pass
print(n, flush=True)
"""

_UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(b"pilotfish %d" % i, (sys.argv[1], 9999))
"""


def udp_exchange(pair: NsPair, count: int) -> int:
    """Send `count` datagrams client -> server; how many the server received (bounded: 5 s idle)."""
    cmd = ["ip", "netns", "exec", pair.server, sys.executable, "-c", _UDP_SINK]
    with subprocess.Popen(
        [*cmd, pair.server_ip, str(count)], stdout=subprocess.PIPE, text=True
    ) as sink:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "ready"
        pair.python(pair.client, _UDP_SEND, pair.server_ip, str(count))
        received = int(sink.stdout.readline())
        sink.wait(timeout=TIMEOUT)
    return received


def _rx_packets(pair: NsPair, ifname: str) -> int:
    out = pair.run(pair.client, "ip", "-j", "-s", "link", "show", ifname)
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def _mac(ns: str, ifname: str) -> str:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "link", "show", ifname],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    return str(json.loads(out)[0]["address"])


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and tc")

# --- names -----------------------------------------------------------------------------------


def test_mirror_names_derive_from_ifindex() -> None:
    assert mirror_names(7) == ("pfx7a", "pfx7b")


def test_mirror_names_refuse_bad_ifindex() -> None:
    with pytest.raises(ValueError):
        mirror_names(0)
    with pytest.raises(ValueError):
        mirror_names(10**12)


@given(st.integers(min_value=1, max_value=2**31 - 1))
def test_mirror_names_fit_ifnamsiz_and_are_recognised(ifindex: int) -> None:
    a, b = mirror_names(ifindex)
    assert len(a) < IFNAMSIZ and len(b) < IFNAMSIZ
    assert is_mirror_name(a) and is_mirror_name(b)


@pytest.mark.parametrize("name", ["eth0", "pfx", "pfxa", "pfx12", "pfx12c", "pfxx1a", "lo"])
def test_other_names_are_not_mirrors(name: str) -> None:
    assert not is_mirror_name(name)


# --- parsing tc's JSON -----------------------------------------------------------------------


def test_parse_qdisc_kinds_of_real_output() -> None:
    text = (
        '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}},'
        '{"kind":"clsact","handle":"ffff:","parent":"ffff:fff1","options":{}}]'
    )
    assert parse_qdisc_kinds(text) == {"noqueue", "clsact"}


def test_parse_filter_prefs_of_real_output() -> None:
    text = (
        '[{"protocol":"all","pref":49000,"kind":"u32","chain":0},'
        '{"protocol":"all","pref":49000,"kind":"u32","chain":0,"options":{"fh":"800:"}},'
        '{"protocol":"ip","pref":10,"kind":"u32","chain":0}]'
    )
    assert parse_filter_prefs(text) == {49000, 10}


@pytest.mark.parametrize("text", ["", "not json", "{}", "[1, 2]", '[{"pref": "x"}]', "[{}]"])
def test_malformed_tc_output_gives_nothing(text: str) -> None:
    assert parse_filter_prefs(text) == set()
    assert parse_qdisc_kinds(text) == set()


@given(st.text())
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    assert isinstance(parse_filter_prefs(text), set)
    assert isinstance(parse_qdisc_kinds(text), set)


@given(st.lists(st.integers(min_value=1, max_value=65535), max_size=8))
def test_parse_filter_prefs_roundtrip(prefs: list[int]) -> None:
    assert parse_filter_prefs(json.dumps([{"pref": p, "kind": "u32"} for p in prefs])) == set(prefs)


# --- set-up and teardown for real ------------------------------------------------------------

_CHILD = """
import json, sys
from pilotfish.capture.mirror import Mirror
m = Mirror(sys.argv[1], state_dir=sys.argv[2], bytecode=sys.argv[4] if len(sys.argv) > 4 else "")
for step in sys.argv[3].split(","):
    getattr(m, step)()
print(json.dumps({"stale": m.stale, "a": m.veth_a, "b": m.veth_b,
                  "created_clsact": m.created_clsact, "dropped": m.dropped()}))
"""


def _mirror(pair: NsPair, state_dir: Path, steps: str, bytecode: str = "") -> dict[str, object]:
    args = [pair.client_if, str(state_dir), steps, *([bytecode] if bytecode else [])]
    out = pair.python(pair.client, _CHILD, *args)
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.integration
@needs_root
def test_install_builds_the_mirror_and_remove_takes_it_all_away(tmp_path: Path) -> None:
    with ns_pair() as pair:
        got = _mirror(pair, tmp_path, "install")
        a, b = str(got["a"]), str(got["b"])
        assert got["stale"] == [] and got["created_clsact"] is True
        assert {a, b} <= set(pair.links())
        assert "clsact" in pair.qdisc_kinds()
        assert pair.filter_prefs("ingress") == {MIRROR_PREF}
        assert pair.filter_prefs("egress") == {MIRROR_PREF}
        assert (tmp_path / f"mirror-{a[3:-1]}").read_text() == "clsact\n"
        info = json.loads(pair.run(pair.client, "ip", "-j", "-d", "link", "show", b))[0]
        assert info["mtu"] == 1500 and "UP" in info["flags"] and "NOARP" in info["flags"]
        assert pair.run(pair.client, "ip", "-6", "addr", "show", "dev", b).strip() == ""
        # the watched interface still carries every datagram, and the mirror sees them too
        before = _rx_packets(pair, b)
        assert udp_exchange(pair, 50) == 50
        assert _rx_packets(pair, b) - before >= 50

        _mirror(pair, tmp_path, "remove,remove")  # idempotent
        assert not {a, b} & set(pair.links())
        assert "clsact" not in pair.qdisc_kinds()
        assert pair.filter_prefs("ingress") == set() == pair.filter_prefs("egress")
        assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
@needs_root
def test_a_capture_filter_mirrors_only_the_frames_it_accepts(tmp_path: Path) -> None:
    """The filter runs in both directions from the MAC header (ingress frames included)."""
    bytecode = compile_filter("udp port 7777", LINKTYPE_ETHERNET).tc_bytecode()
    send = "import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    send += "for _ in range(3):\n    s.sendto(b'x', (sys.argv[1], 7777))\n"
    with ns_pair() as pair:
        b = str(_mirror(pair, tmp_path, "install", bytecode)["b"])
        try:
            before = _rx_packets(pair, b)
            assert udp_exchange(pair, 50) == 50  # another port: not mirrored
            assert _rx_packets(pair, b) == before
            pair.python(pair.client, send, pair.server_ip)  # 3 out (egress)
            pair.python(pair.server, send, pair.client_ip)  # 3 in (ingress)
            time.sleep(0.2)
            assert _rx_packets(pair, b) - before == 6  # the ICMP answers are not UDP
        finally:
            _mirror(pair, tmp_path, "remove")
        assert pair.filter_prefs("ingress") == set() == pair.filter_prefs("egress")


@pytest.mark.integration
@needs_root
def test_a_clsact_that_was_there_before_is_kept(tmp_path: Path) -> None:
    with ns_pair() as pair:
        pair.run(pair.client, "tc", "qdisc", "add", "dev", pair.client_if, "clsact")
        got = _mirror(pair, tmp_path, "install,remove")
        assert got["created_clsact"] is False
        assert "clsact" in pair.qdisc_kinds()
        assert pair.filter_prefs("ingress") == set()


@pytest.mark.integration
@needs_root
def test_stale_state_of_a_killed_run_is_replaced_and_cleaned(tmp_path: Path) -> None:
    with ns_pair() as pair:
        first = _mirror(pair, tmp_path, "install")  # the child exits without removing
        second = _mirror(pair, tmp_path, "install")
        stale = [str(s) for s in second["stale"]]  # type: ignore[attr-defined]
        assert any(str(first["a"]) in s for s in stale)
        assert sum("filter pref 49000" in s for s in stale) == 2
        assert second["created_clsact"] is True  # ownership inherited from the state file
        assert pair.filter_prefs("ingress") == {MIRROR_PREF}
        _mirror(pair, tmp_path, "remove")
        assert "clsact" not in pair.qdisc_kinds()
        assert not [n for n in pair.links() if is_mirror_name(n)]


@pytest.mark.integration
@needs_root
def test_unknown_interface_is_an_oserror() -> None:
    from pilotfish.capture.mirror import Mirror

    with pytest.raises(OSError):
        Mirror(f"nope{secrets.token_hex(4)}")
