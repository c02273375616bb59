"""A Kubernetes-shaped inventory of a testbed, for the identity resolver.

`Inventory` holds pods (name, namespace, labels, IP, node) and services (selector, cluster
IP, ports).  `to_k8s()` renders them as the `PodList`/`ServiceList` objects the Kubernetes
API returns (only the fields pilotfish reads), so the resolver can be fed either from a real
API server or from the testbed through the same code.  Plain data: no I/O, no clocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import msgspec

from pilotfish.testbed.netns import Testbed

_UID_NAMESPACE: Final = uuid.UUID("5f0c6a53-6c1e-4d7a-9a57-70696c6f7466")


class PodInfo(msgspec.Struct, frozen=True):
    name: str
    namespace: str
    ip: str
    node: str
    labels: dict[str, str] = {}


class ServicePort(msgspec.Struct, frozen=True):
    port: int
    protocol: Literal["TCP", "UDP"] = "TCP"
    name: str = ""
    target_port: int | None = None


class ServiceInfo(msgspec.Struct, frozen=True):
    name: str
    namespace: str
    cluster_ip: str  # "None" for a headless service, as Kubernetes spells it
    selector: dict[str, str]
    ports: list[ServicePort]


class Inventory(msgspec.Struct):
    node: str
    pods: list[PodInfo] = []
    services: list[ServiceInfo] = []

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def service_by_ip(self, ip: str) -> ServiceInfo | None:
        return next((s for s in self.services if s.cluster_ip == ip), None)

    def backends(self, service: ServiceInfo) -> list[PodInfo]:
        """Pods in the service's namespace whose labels contain its selector."""
        return [
            p
            for p in self.pods
            if p.namespace == service.namespace and selects(service.selector, p.labels)
        ]

    def to_k8s(self) -> dict[str, Any]:
        """{"pods": PodList, "services": ServiceList, "nodes": NodeList} as API objects."""
        return {
            "pods": _list("PodList", [_pod_object(p) for p in self.pods]),
            "services": _list("ServiceList", [_service_object(s) for s in self.services]),
            "nodes": _list(
                "NodeList", [{"apiVersion": "v1", "kind": "Node", "metadata": _meta(self.node)}]
            ),
        }


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Kubernetes equality selector semantics; an empty selector selects nothing."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def inventory_of(testbed: Testbed, services: Iterable[ServiceInfo] = ()) -> Inventory:
    """Every pod of the testbed, plus the given services."""
    pods = [PodInfo(p.name, p.namespace, p.ip, p.node, dict(p.labels)) for p in testbed.pods]
    return Inventory(testbed.node, pods, list(services))


def encode(inventory: Inventory) -> bytes:
    return msgspec.json.encode(inventory)


def decode(data: bytes) -> Inventory:
    """Parse an inventory; raises msgspec.ValidationError/DecodeError on bad input."""
    return msgspec.json.decode(data, type=Inventory)


def _meta(
    name: str, namespace: str | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid5(_UID_NAMESPACE, f"{namespace}/{name}"))
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items}


def _pod_object(p: PodInfo) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(p.name, p.namespace, p.labels),
        "spec": {"nodeName": p.node},
        "status": {"phase": "Running", "podIP": p.ip, "podIPs": [{"ip": p.ip}]},
    }


def _service_object(s: ServiceInfo) -> dict[str, Any]:
    ports = []
    for port in s.ports:
        item: dict[str, Any] = {
            "port": port.port,
            "protocol": port.protocol,
            "targetPort": port.target_port or port.port,
        }
        if port.name:
            item["name"] = port.name
        ports.append(item)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(s.name, s.namespace),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": s.cluster_ip,
            "clusterIPs": [s.cluster_ip],
            "selector": dict(s.selector),
            "ports": ports,
        },
    }
