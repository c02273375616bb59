"""A local "node": network namespaces ("pods") joined by a Linux bridge.

The bridge lives in the root namespace and has NO address, and the root namespace gets no
route into the testbed subnet: traffic between pods stays on the bridge and nothing a pod
sends can leave the machine.  Each pod is a namespace with `lo` up and one veth (`eth0`,
the next address of the subnet, no default route); the host end is enslaved to the bridge.
Service (cluster) addresses are taken from the top of the subnet and added as /32s to the
pod that backs them.

Bounds: at most one pod per host address of the subnet (minus the service addresses in
use).  `close()` is idempotent and best effort: it stops every tracked process by PID
(terminate, bounded wait, kill), kills anything else left inside the testbed's namespaces,
deletes namespaces, veths and the bridge, and collects errors instead of stopping at the
first one.  A crashed owner's leftovers are removed by `naming.cleanup_stale`.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from pilotfish.testbed import iproute, naming
from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.procs import ProcessSet, kill_pids

DEFAULT_SUBNET = "10.213.0.0/24"


@dataclass(frozen=True)
class Pod:
    """One pod: a namespace with one address on the testbed bridge."""

    name: str
    namespace: str
    netns: str
    ip: str
    veth: str  # host side, attached to the bridge
    labels: Mapping[str, str] = field(default_factory=dict)
    node: str = ""

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """argv wrapped to run inside this pod's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


class Testbed:
    """A bridge plus pods; use as a context manager so `close()` always runs."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        prefix: str | None = None,
        subnet: str = DEFAULT_SUBNET,
        *,
        offloads: bool = False,
        node: str | None = None,
        state_dir: Path = naming.STATE_DIR,
    ) -> None:
        self.prefix = naming.check_prefix(prefix) if prefix else naming.new_prefix()
        self.subnet = ipaddress.IPv4Network(subnet)
        if self.subnet.prefixlen > 29:
            raise ValueError(f"testbed subnet {subnet} is too small")
        self.node = node or f"{self.prefix}-node"
        self.bridge = naming.bridge_name(self.prefix)
        self.pods: list[Pod] = []
        self.procs = ProcessSet()
        self._cleanups: list[Callable[[], None]] = []
        self._state_dir = state_dir
        self._hosts = list(self.subnet.hosts())
        self._next_host = 0
        self._next_service_ip = len(self._hosts) - 1
        self._offloads = offloads
        self._owner = os.getpid()
        self._closed = False
        naming.write_state(self.prefix, state_dir)
        try:
            iproute.ip("link", "add", self.bridge, "type", "bridge")
            iproute.ip("link", "set", self.bridge, "up")
            if not offloads:
                iproute.set_offloads(self.bridge, False)
        except BaseException:
            self.close()
            raise

    # --- building ------------------------------------------------------------------

    def add_pod(
        self, name: str, namespace: str = "default", labels: Mapping[str, str] | None = None
    ) -> Pod:
        """Create a pod namespace with the next free address of the subnet."""
        self._check_open()
        if any(p.name == name and p.namespace == namespace for p in self.pods):
            raise ValueError(f"pod {namespace}/{name} already exists")
        if self._next_host > self._next_service_ip:
            raise TestbedError(f"subnet {self.subnet} has no free address for pod {name}")
        index = self._next_host + 1
        addr = self._hosts[self._next_host]
        self._next_host += 1
        netns = naming.netns_name(self.prefix, self._owner, index, name)
        host = naming.host_veth(self.prefix, index)
        peer = naming.pod_veth(self.prefix, index)
        pod = Pod(name, namespace, netns, str(addr), host, dict(labels or {}), self.node)
        self.pods.append(pod)  # tracked before creation so close() removes partial pods
        iproute.ip("netns", "add", netns)
        iproute.ip_in(netns, "link", "set", "lo", "up")
        iproute.ip("link", "add", host, "type", "veth", "peer", "name", peer)
        iproute.ip("link", "set", peer, "netns", netns)
        iproute.ip_in(netns, "link", "set", peer, "name", "eth0")
        iproute.ip_in(netns, "addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", "eth0")
        iproute.ip("link", "set", host, "master", self.bridge)
        iproute.ip("link", "set", host, "up")
        iproute.ip_in(netns, "link", "set", "eth0", "up")
        if not self._offloads:
            iproute.set_offloads(host, False)
            iproute.set_offloads("eth0", False, netns)
        return pod

    def add_service_ip(self, pod: Pod) -> str:
        """Take the highest free address of the subnet and add it to `pod` as a /32."""
        self._check_open()
        if self._next_service_ip < self._next_host:
            raise TestbedError(f"subnet {self.subnet} has no free service address")
        addr = str(self._hosts[self._next_service_ip])
        self._next_service_ip -= 1
        iproute.ip_in(pod.netns, "addr", "add", f"{addr}/32", "dev", "eth0")
        return addr

    def pod(self, name: str, namespace: str | None = None) -> Pod:
        """Look a pod up by name (and namespace when names repeat)."""
        for p in self.pods:
            if p.name == name and (namespace is None or p.namespace == namespace):
                return p
        raise KeyError(f"no pod {name!r} in testbed {self.prefix}")

    def offloads(self, enabled: bool) -> None:
        """Switch TSO/GSO/GRO and checksum offloads on every veth end and the bridge."""
        self._check_open()
        self._offloads = enabled
        iproute.set_offloads(self.bridge, enabled)
        for p in self.pods:
            iproute.set_offloads(p.veth, enabled)
            iproute.set_offloads("eth0", enabled, p.netns)

    # --- processes -----------------------------------------------------------------

    def spawn(self, pod: Pod, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start argv inside `pod` (`ip netns exec` execs in place, so the PID is argv's)."""
        return self.spawn_host(pod.exec_argv(argv), **kw)

    def spawn_host(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start argv in the root namespace (capture tools on the bridge side), tracked."""
        self._check_open()
        kw.setdefault("stdin", subprocess.DEVNULL)
        return self.procs.add(subprocess.Popen(list(argv), **kw))

    def run(
        self, pod: Pod, argv: Sequence[str], timeout: float = 10.0, check: bool = False
    ) -> subprocess.CompletedProcess[bytes]:
        """Run argv inside `pod` to completion (killed at `timeout`), output captured."""
        self._check_open()
        return subprocess.run(
            pod.exec_argv(argv),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=check,
        )

    def stop(self, proc: subprocess.Popen[bytes]) -> int | None:
        """Stop one tracked process early; returns its exit code."""
        return self.procs.stop(proc)

    # --- teardown ------------------------------------------------------------------

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run fn at close(), after processes stop and before namespaces go (LIFO)."""
        self._cleanups.append(fn)

    def close(self) -> None:
        """Stop processes and delete namespaces, veths and the bridge; raise errors at end."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        self.procs.stop_all()
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as exc:  # a cleanup hook failing must not stop teardown
                errors.append(f"cleanup hook: {exc!r}")
        present_ns = set(iproute.netns_names())
        for p in reversed(self.pods):
            if p.netns in present_ns:
                kill_pids(iproute.netns_pids(p.netns))
        # Host veths first (each takes its pod end along), then namespaces, then the bridge.
        links = set(iproute.link_names())
        results = [iproute.delete_link(p.veth) for p in reversed(self.pods) if p.veth in links]
        results += [iproute.delete_netns(p.netns) for p in self.pods if p.netns in present_ns]
        if self.bridge in links:
            results.append(iproute.delete_link(self.bridge))
        errors += [err for err in results if err]
        if errors:
            raise TestbedError("testbed cleanup incomplete: " + "; ".join(errors))
        naming.remove_state(self.prefix, self._state_dir)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TestbedError(f"testbed {self.prefix} is closed")
