"""inventory: the Kubernetes-shaped view of testbed pods and services."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.testbed.inventory import (
    Inventory,
    PodInfo,
    ServiceInfo,
    ServicePort,
    decode,
    encode,
    selects,
)

PODS = [
    PodInfo("cart-api", "shop", "10.213.0.2", "node-a", {"app": "cart-api", "tier": "backend"}),
    PodInfo("catalog", "shop", "10.213.0.3", "node-a", {"app": "catalog", "tier": "backend"}),
    PodInfo("dns", "kube-system", "10.213.0.5", "node-a", {"k8s-app": "kube-dns"}),
]
CART = ServiceInfo("cart-api", "shop", "10.213.0.254", {"app": "cart-api"}, [ServicePort(8080)])
BACKEND = ServiceInfo(
    "backend", "shop", "None", {"tier": "backend"}, [ServicePort(80, name="http")]
)
DNS = ServiceInfo(
    "kube-dns",
    "kube-system",
    "10.213.0.251",
    {"k8s-app": "kube-dns"},
    [ServicePort(53, "UDP", "dns", 5353)],
)
INV = Inventory("node-a", PODS, [CART, BACKEND, DNS])

LABELS = st.dictionaries(st.sampled_from("abc"), st.sampled_from("xyz"), max_size=3)


def test_lookups_by_ip() -> None:
    assert INV.pod_by_ip("10.213.0.3") == PODS[1]
    assert INV.pod_by_ip("10.213.0.9") is None
    assert INV.service_by_ip("10.213.0.254") == CART
    assert INV.service_by_ip("None") == BACKEND  # headless spelled as Kubernetes does


def test_backends_follow_selectors_within_the_namespace() -> None:
    assert INV.backends(CART) == [PODS[0]]
    assert INV.backends(BACKEND) == PODS[:2]
    other_ns = ServiceInfo("x", "default", "None", {"app": "cart-api"}, [])
    assert INV.backends(other_ns) == []


def test_to_k8s_has_the_api_shapes() -> None:
    k8s = INV.to_k8s()
    assert k8s["pods"]["kind"] == "PodList" and len(k8s["pods"]["items"]) == 3
    pod = k8s["pods"]["items"][0]
    assert pod["metadata"]["name"] == "cart-api" and pod["metadata"]["labels"]["tier"] == "backend"
    assert pod["status"]["podIP"] == "10.213.0.2" and pod["spec"]["nodeName"] == "node-a"
    svc = k8s["services"]["items"][2]
    assert svc["spec"]["clusterIP"] == "10.213.0.251"
    assert svc["spec"]["ports"] == [
        {"port": 53, "protocol": "UDP", "targetPort": 5353, "name": "dns"}
    ]
    assert k8s["services"]["items"][0]["spec"]["ports"][0]["targetPort"] == 8080
    assert k8s["nodes"]["items"][0]["metadata"]["name"] == "node-a"
    # uids are stable per namespace/name
    assert pod["metadata"]["uid"] == INV.to_k8s()["pods"]["items"][0]["metadata"]["uid"]


def test_json_round_trip_and_bad_input() -> None:
    assert decode(encode(INV)) == INV
    with pytest.raises(msgspec.DecodeError):
        decode(b"{not json")
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"node": "n", "pods": [{"name": 1}]}')


@given(LABELS, LABELS)
def test_selector_semantics(selector: dict[str, str], labels: dict[str, str]) -> None:
    expected = bool(selector) and selector.items() <= labels.items()
    assert selects(selector, labels) == expected
