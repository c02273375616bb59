"""IP address -> Kubernetes identity (pod, service, namespace, node).

Fed with Kubernetes API objects (the `items` of PodList and ServiceList, as plain dicts),
whether they come from a real API server's watch or from the testbed's inventory, so both
go through the same code.  Lookups are one dict access; the maps are rebuilt on `update`.

A pod IP resolves to the pod, its namespace and node, and the first service whose selector
matches its labels.  A service's cluster IP resolves to the service (the backend pod is not
known without conntrack).  Unknown addresses keep only ip and port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from pilotfish.model import Endpoint


class _Identity(msgspec.Struct, frozen=True):
    name: str
    pod: str = ""
    namespace: str = ""
    service: str = ""
    node: str = ""


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_ips(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip", "") for p in status.get("podIPs") or [] if isinstance(p, dict)]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return [ip for ip in ips if ip]


def _service_ips(service: Mapping[str, Any]) -> list[str]:
    spec = service.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if ip and ip != "None"]


class K8sResolver:
    """Implements the pipeline's Resolver from pods and services."""

    def __init__(
        self, pods: Iterable[Mapping[str, Any]] = (), services: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        self._by_ip: dict[str, _Identity] = {}
        self.update(pods, services)

    @classmethod
    def from_lists(cls, lists: Mapping[str, Any]) -> K8sResolver:
        """From {"pods": PodList, "services": ServiceList} (e.g. an inventory's to_k8s())."""
        pods = (lists.get("pods") or {}).get("items") or []
        services = (lists.get("services") or {}).get("items") or []
        return cls(pods, services)

    def update(
        self, pods: Iterable[Mapping[str, Any]], services: Iterable[Mapping[str, Any]]
    ) -> None:
        """Replace the whole picture (a fresh list from the API)."""
        services = list(services)
        by_ip: dict[str, _Identity] = {}
        for svc in services:
            meta = svc.get("metadata") or {}
            name, ns = meta.get("name", ""), meta.get("namespace", "")
            for ip in _service_ips(svc):
                by_ip[ip] = _Identity(name=name, namespace=ns, service=name)
        for pod in pods:
            meta = pod.get("metadata") or {}
            name, ns = meta.get("name", ""), meta.get("namespace", "")
            labels = meta.get("labels") or {}
            service = next(
                (
                    (s.get("metadata") or {}).get("name", "")
                    for s in services
                    if (s.get("metadata") or {}).get("namespace") == ns
                    and _selects((s.get("spec") or {}).get("selector") or {}, labels)
                ),
                "",
            )
            node = (pod.get("spec") or {}).get("nodeName", "")
            for ip in _pod_ips(pod):
                by_ip[ip] = _Identity(name=name, pod=name, namespace=ns, service=service, node=node)
        self._by_ip = by_ip

    def __len__(self) -> int:
        return len(self._by_ip)

    def endpoint(self, ip: str, port: int) -> Endpoint:
        who = self._by_ip.get(ip)
        if who is None:
            return Endpoint(ip=ip, port=port)
        return Endpoint(
            ip=ip,
            port=port,
            name=who.name,
            pod=who.pod,
            namespace=who.namespace,
            service=who.service,
            node=who.node,
        )
