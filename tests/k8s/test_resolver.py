"""K8sResolver: pod and service IPs to identities, from Kubernetes API objects."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pilotfish.k8s.resolver import K8sResolver
from pilotfish.model import Endpoint


def pod(name: str, ns: str, ip: str, labels: dict[str, str], node: str = "n1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
    }


def service(name: str, ns: str, ip: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "selector": selector},
    }


PODS = [
    pod("cart-7d9", "shop", "10.1.0.5", {"app": "cart"}),
    pod("web-1", "shop", "10.1.0.6", {"app": "web"}),
    pod("cart-other", "other", "10.1.0.7", {"app": "cart"}),
]
SERVICES = [service("cart", "shop", "10.96.0.10", {"app": "cart"})]


def test_pod_ip_gets_pod_namespace_node_and_service() -> None:
    r = K8sResolver(PODS, SERVICES)
    assert r.endpoint("10.1.0.5", 8080) == Endpoint(
        ip="10.1.0.5",
        port=8080,
        name="cart-7d9",
        pod="cart-7d9",
        namespace="shop",
        service="cart",
        node="n1",
    )


def test_selector_only_matches_within_namespace() -> None:
    r = K8sResolver(PODS, SERVICES)
    assert r.endpoint("10.1.0.7", 1).service == ""
    assert r.endpoint("10.1.0.6", 1).service == ""


def test_cluster_ip_resolves_to_service() -> None:
    e = K8sResolver(PODS, SERVICES).endpoint("10.96.0.10", 80)
    assert (e.name, e.service, e.namespace, e.pod) == ("cart", "cart", "shop", "")


def test_unknown_and_headless_and_broken_objects() -> None:
    headless = service("hl", "shop", "None", {"app": "web"})
    r = K8sResolver([*PODS, {"metadata": {}}, {}], [headless, {}])
    assert r.endpoint("192.0.2.1", 5) == Endpoint(ip="192.0.2.1", port=5)
    assert len(r) == 3


def test_from_lists_and_update_replaces() -> None:
    r = K8sResolver.from_lists({"pods": {"items": PODS}, "services": {"items": SERVICES}})
    assert r.endpoint("10.1.0.6", 1).pod == "web-1"
    r.update([], [])
    assert r.endpoint("10.1.0.6", 1).pod == ""


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["metadata", "spec", "status"]),
            st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
        )
    )
)
def test_arbitrary_shapes_never_raise(objs: list[dict[str, Any]]) -> None:
    K8sResolver(objs, objs).endpoint("10.0.0.1", 1)
