"""Real servers started inside testbed pods: nginx, the Python API, dnsmasq and Redis.

Each starter writes its configuration to a private temporary directory (removed when the
testbed closes), starts the server in the foreground inside the pod as a tracked process
(stdout/stderr to `server.log` in that directory), then waits, bounded by `ready_s`, until
the port answers from inside the pod.  A server that exits or never answers raises
`TestbedError` with the tail of its log.  The testbed stops every server at close().
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pilotfish.testbed.apiserver import ITEMS
from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.netns import Pod, Testbed

READY_S: Final = 10.0
DNS_DOMAIN: Final = "pilotfish.test"
BIG_BYTES: Final = 100 * 1024
LOG_TAIL: Final = 2000
ACCESS_LOG: Final = "access.log"


@dataclass(frozen=True)
class Service:
    """A running server: where it listens and the process behind it."""

    name: str
    pod: Pod
    port: int
    protocol: str  # "tcp" or "udp"
    proc: subprocess.Popen[bytes]
    workdir: Path
    addresses: tuple[str, ...] = ()  # what it is bound to ("0.0.0.0": every pod address)

    @property
    def ip(self) -> str:
        return self.pod.ip

    @property
    def url(self) -> str:
        return f"http://{self.pod.ip}:{self.port}"

    def log(self) -> str:
        try:
            return (self.workdir / "server.log").read_text(errors="replace")[-LOG_TAIL:]
        except OSError:
            return ""


def start_nginx(
    testbed: Testbed,
    pod: Pod,
    port: int = 80,
    ready_s: float = READY_S,
    access_log: bool = False,
) -> Service:
    """nginx serving /, /api/v1/items (JSON), /big (100 KB), /redirect (301) and 404s.

    With `access_log`, every answered request is one line of `ACCESS_LOG` in the service's
    workdir (the server's own count of transactions; see `access_count`)."""
    workdir = _workdir(testbed, "nginx")
    log_directive = f"access_log {workdir / ACCESS_LOG};" if access_log else "access_log off;"
    www = workdir / "www"
    www.mkdir()
    (www / "index.html").write_text("<html><body><h1>pilotfish catalog</h1></body></html>\n")
    (www / "big.bin").write_bytes(bytes(i % 251 for i in range(BIG_BYTES)))
    items = json.dumps({"items": ITEMS, "count": len(ITEMS)}, separators=(",", ":"))
    temps = "\n".join(
        f"  {kind}_temp_path {workdir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (workdir / "nginx.conf").write_text(
        f"""daemon off;
user root;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 1024; }}
http {{
  {log_directive}
  keepalive_timeout 65;
  keepalive_requests 1000000;
{temps}
  default_type application/octet-stream;
  server {{
    listen {port} reuseport;
    root {www};
    location = / {{ default_type text/html; try_files /index.html =404; }}
    location = /api/v1/items {{ default_type application/json; return 200 '{items}'; }}
    location = /big {{ try_files /big.bin =404; }}
    location = /redirect {{ return 301 /; }}
    location / {{ return 404; }}
  }}
}}
"""
    )
    argv = ["nginx", "-p", str(workdir), "-e", "stderr", "-c", str(workdir / "nginx.conf")]
    return _start(testbed, pod, "nginx", argv, port, "tcp", workdir, ready_s)


def access_count(service: Service) -> int:
    """Requests nginx logged so far (0 when it keeps no access log)."""
    try:
        with (service.workdir / ACCESS_LOG).open("rb") as log:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))
    except OSError:
        return 0


def start_api(testbed: Testbed, pod: Pod, port: int = 8080, ready_s: float = READY_S) -> Service:
    """The stdlib Python API server (see `apiserver`), bound to every address of the pod."""
    workdir = _workdir(testbed, "api")
    argv = [sys.executable, "-m", "pilotfish.testbed.apiserver", "--host", "0.0.0.0"]
    argv += ["--port", str(port)]
    return _start(testbed, pod, "api", argv, port, "tcp", workdir, ready_s)


def dns_records(testbed: Testbed) -> list[str]:
    """The dnsmasq options for the fixed records: one A per pod plus a few named ones.

    `POD.NAMESPACE.pilotfish.test` -> the pod's address; `api.pilotfish.test` has an A and
    an AAAA record; `info.pilotfish.test` has a TXT record.
    """
    opts = [
        f"--host-record={p.name}.{p.namespace}.{DNS_DOMAIN},{p.ip}"
        for p in testbed.pods
        if _dns_label(p.name) and _dns_label(p.namespace)
    ]
    first = testbed.pods[0].ip if testbed.pods else "10.213.0.1"
    opts.append(f"--host-record=api.{DNS_DOMAIN},{first},fd00:213::1")
    opts.append(f"--txt-record=info.{DNS_DOMAIN},pilotfish testbed")
    return opts


def start_dnsmasq(
    testbed: Testbed,
    pod: Pod,
    port: int = 53,
    extra: Sequence[str] = (),
    also_ips: Sequence[str] = (),
    ready_s: float = READY_S,
) -> Service:
    """dnsmasq on the pod address: fixed records under pilotfish.test, NXDOMAIN otherwise.

    `also_ips` are further local addresses to answer on (a service address of the pod).
    """
    workdir = _workdir(testbed, "dnsmasq")
    addresses = (pod.ip, *also_ips)
    argv = [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--conf-file=/dev/null",
        "--user=root",
        "--bind-interfaces",
        f"--listen-address={','.join(addresses)}",
        f"--port={port}",
        f"--pid-file={workdir}/dnsmasq.pid",
        "--address=/#/",  # every name without a record: NXDOMAIN
        *dns_records(testbed),
        *extra,
    ]
    return _start(testbed, pod, "dnsmasq", argv, port, "udp", workdir, ready_s, addresses)


def start_redis(
    testbed: Testbed,
    pod: Pod,
    port: int = 6379,
    also_ips: Sequence[str] = (),
    ready_s: float = READY_S,
) -> Service:
    """redis-server bound to the pod address (and `also_ips`), no persistence, no
    protected mode."""
    workdir = _workdir(testbed, "redis")
    addresses = (pod.ip, *also_ips)
    argv = [
        "redis-server",
        "--bind",
        *addresses,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        "",
    ]
    return _start(testbed, pod, "redis", argv, port, "tcp", workdir, ready_s, addresses)


def wait_ready(testbed: Testbed, service: Service, ready_s: float = READY_S) -> None:
    """Probe the service from inside its pod until it answers; raise with its log if not."""
    kind = "dns" if service.protocol == "udp" else "tcp"
    argv = [sys.executable, "-m", "pilotfish.testbed.probe", kind, service.ip, str(service.port)]
    argv += ["--timeout", str(ready_s)]
    done = testbed.run(service.pod, argv, timeout=ready_s + 10)
    if done.returncode != 0 or service.proc.poll() is not None:
        testbed.stop(service.proc)
        raise TestbedError(
            f"{service.name} in pod {service.pod.name} did not answer on "
            f"{service.ip}:{service.port} within {ready_s}s; log tail:\n{service.log()}"
        )


def _start(
    testbed: Testbed,
    pod: Pod,
    name: str,
    argv: Sequence[str],
    port: int,
    protocol: str,
    workdir: Path,
    ready_s: float,
    addresses: Sequence[str] = ("0.0.0.0",),
) -> Service:
    with (workdir / "server.log").open("wb") as log:
        proc = testbed.spawn(pod, argv, stdout=log, stderr=subprocess.STDOUT)
    service = Service(name, pod, port, protocol, proc, workdir, tuple(addresses))
    wait_ready(testbed, service, ready_s)
    return service


def _workdir(testbed: Testbed, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{testbed.prefix}-{name}-"))
    testbed.add_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def _dns_label(text: str) -> bool:
    return bool(text) and len(text) <= 63 and all(c.isalnum() or c == "-" for c in text)
