"""demo: the shop cluster comes up, answers a mixed load, and describes itself."""

from __future__ import annotations

import pytest

from pilotfish.testbed.demo import build_demo
from pilotfish.testbed.load import run_load
from pilotfish.testbed.netns import Testbed
from tests.testbed.conftest import NEEDS_ROOT

pytestmark = [NEEDS_ROOT, pytest.mark.integration]


def test_demo_cluster_serves_a_mixed_load(testbed: Testbed) -> None:
    demo = build_demo(testbed)
    assert set(demo.pods) == {"frontend", "cart-api", "catalog", "redis", "dns"}
    assert demo.pods["dns"].namespace == "kube-system"
    targets = demo.targets()
    result = run_load(testbed, demo.client, targets, len(targets) * 2, 30.0)
    assert (result.sent, result.errors) == (len(targets) * 2, 0)
    assert all(c["ok"] == 2 for c in result.per_target.values())


def test_demo_inventory_matches_the_testbed(testbed: Testbed) -> None:
    demo = build_demo(testbed)
    inv = demo.inventory
    assert {(p.namespace, p.name, p.ip) for p in inv.pods} == {
        (p.namespace, p.name, p.ip) for p in testbed.pods
    }
    for svc in inv.services:
        assert svc.cluster_ip == demo.cluster_ips[svc.name]
        backends = inv.backends(svc)
        assert len(backends) == 1
        assert inv.service_by_ip(svc.cluster_ip) == svc
    dns = next(s for s in inv.services if s.name == "kube-dns")
    assert dns.ports[0].protocol == "UDP" and inv.backends(dns)[0].name == "dns"
    names = {item["metadata"]["name"] for item in inv.to_k8s()["services"]["items"]}
    assert names == {"cart-api", "catalog", "redis", "kube-dns"}
