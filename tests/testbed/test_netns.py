"""netns: pods on an address-less bridge, offload switches, processes and a clean close()."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from pilotfish.testbed import iproute
from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.netns import Testbed
from tests.testbed.conftest import NEEDS_ROOT

pytestmark = [NEEDS_ROOT, pytest.mark.integration]

SERVE = [sys.executable, "-m", "pilotfish.testbed.apiserver", "--host", "0.0.0.0", "--port", "8080"]
WAIT = [sys.executable, "-m", "pilotfish.testbed.probe", "tcp"]


def test_pods_get_consecutive_addresses_and_short_names(testbed: Testbed) -> None:
    a = testbed.add_pod("a", "shop", {"app": "a"})
    b = testbed.add_pod("b")
    assert (a.ip, b.ip) == ("10.213.0.1", "10.213.0.2")
    assert (a.namespace, b.namespace, a.labels) == ("shop", "default", {"app": "a"})
    for name in (testbed.bridge, a.veth, b.veth):
        assert name.startswith(testbed.prefix) and len(name) <= 15
    assert {a.netns, b.netns} <= set(iproute.netns_names())
    assert testbed.pod("b") == b
    with pytest.raises(KeyError):
        testbed.pod("c")
    with pytest.raises(ValueError, match="already exists"):
        testbed.add_pod("a", "shop")


def test_nothing_routes_between_root_and_testbed(testbed: Testbed) -> None:
    pod = testbed.add_pod("a")
    assert "inet " not in iproute.ip("-4", "addr", "show", "dev", testbed.bridge)
    assert testbed.bridge not in iproute.ip("-4", "route", "show")
    routes = iproute.ip_in(pod.netns, "-4", "route", "show")
    assert routes.strip() == "10.213.0.0/24 dev eth0 proto kernel scope link src 10.213.0.1"
    # From the pod, an address outside the subnet is unreachable: no default route.
    done = testbed.run(pod, ["ip", "route", "get", "192.0.2.1"])
    assert done.returncode != 0


def test_pods_talk_to_each_other_over_http(testbed: Testbed) -> None:
    server = testbed.add_pod("server")
    client = testbed.add_pod("client")
    proc = testbed.spawn(server, SERVE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert testbed.run(server, [*WAIT, server.ip, "8080"], timeout=15).returncode == 0
    done = testbed.run(client, ["curl", "-s", f"http://{server.ip}:8080/healthz"])
    assert done.stdout == b"ok"
    assert proc.pid in testbed.procs.alive()


def test_offloads_switch_on_every_veth_end_and_the_bridge(testbed: Testbed) -> None:
    pod = testbed.add_pod("a")
    state = iproute.offload_state(pod.veth)
    assert not state["tcp-segmentation-offload"] and not state["generic-receive-offload"]
    testbed.offloads(True)
    assert iproute.offload_state("eth0", pod.netns)["tx-checksumming"]
    assert iproute.offload_state(testbed.bridge)["generic-segmentation-offload"]
    testbed.offloads(False)
    assert not iproute.offload_state("eth0", pod.netns)["rx-checksumming"]


def test_service_addresses_come_from_the_top_and_are_reachable(testbed: Testbed) -> None:
    server = testbed.add_pod("server")
    client = testbed.add_pod("client")
    vip = testbed.add_service_ip(server)
    assert vip == "10.213.0.254"
    testbed.spawn(server, SERVE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert testbed.run(server, [*WAIT, vip, "8080"], timeout=15).returncode == 0
    assert testbed.run(client, ["curl", "-s", f"http://{vip}:8080/healthz"]).stdout == b"ok"


def test_small_subnet_runs_out_with_a_clear_error() -> None:
    with Testbed(subnet="10.213.7.0/29") as tb:  # 6 host addresses
        for i in range(5):
            tb.add_pod(f"p{i}")
        tb.add_service_ip(tb.pods[0])
        with pytest.raises(TestbedError, match="no free address"):
            tb.add_pod("one-too-many")
        assert [ipaddress.ip_address(p.ip) for p in tb.pods][-1] == ipaddress.ip_address(
            "10.213.7.5"
        )


def test_close_removes_namespaces_links_and_processes() -> None:
    tb = Testbed()
    pods = [tb.add_pod(f"p{i}") for i in range(3)]
    procs = [tb.spawn(p, ["sleep", "60"]) for p in pods]
    stray = subprocess.Popen(["ip", "netns", "exec", pods[0].netns, "sleep", "60"])  # untracked
    tb.close()
    names = set(iproute.netns_names())
    links = set(iproute.link_names())
    assert not any(p.netns in names for p in pods)
    assert not any(name.startswith(tb.prefix) for name in links)
    assert all(p.poll() is not None for p in procs)
    assert stray.wait(timeout=5) < 0  # killed because it lived in a testbed namespace
    tb.close()  # idempotent
    with pytest.raises(TestbedError, match="closed"):
        tb.add_pod("late")


def test_close_after_a_failed_pod_still_cleans_up() -> None:
    with pytest.raises(TestbedError), Testbed() as tb:
        tb.add_pod("good")
        tb.add_pod("dup-veth")
        # Make the next veth name collide so add_pod fails half-way through.
        iproute.ip("link", "add", f"{tb.prefix}h3", "type", "dummy")
        tb.add_pod("broken")
    assert not any(n.startswith(tb.prefix) for n in iproute.link_names())
    assert not any(n.startswith(tb.prefix) for n in iproute.netns_names())


def test_invalid_arguments_are_refused_before_touching_the_kernel() -> None:
    with pytest.raises(ValueError, match="prefix"):
        Testbed(prefix="Bad-Prefix")
    with pytest.raises(ValueError, match="too small"):
        Testbed(subnet="10.213.9.0/30")
