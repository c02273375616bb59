"""services: each real server answers the expected bytes from another pod, then stops."""

from __future__ import annotations

import shutil
import socket
import sys

import pytest

from pilotfish.testbed.iproute import TestbedError
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.procs import pid_alive
from pilotfish.testbed.services import (
    BIG_BYTES,
    access_count,
    start_api,
    start_dnsmasq,
    start_nginx,
    start_redis,
)
from tests.testbed.conftest import NEEDS_ROOT

pytestmark = [NEEDS_ROOT, pytest.mark.integration]


def _curl(tb: Testbed, pod_name: str, url: str, *opts: str) -> bytes:
    done = tb.run(tb.pod(pod_name), ["curl", "-s", "--max-time", "5", *opts, url], timeout=15)
    return done.stdout


def test_nginx_serves_its_fixed_routes(testbed: Testbed) -> None:
    testbed.add_pod("client")
    nginx = start_nginx(testbed, testbed.add_pod("web"))
    code = ["-o", "/dev/null", "-w", "%{http_code} %{size_download}"]
    assert b"pilotfish catalog" in _curl(testbed, "client", f"{nginx.url}/")
    assert b'"count":10' in _curl(testbed, "client", f"{nginx.url}/api/v1/items")
    assert _curl(testbed, "client", f"{nginx.url}/big", *code) == f"200 {BIG_BYTES}".encode()
    assert _curl(testbed, "client", f"{nginx.url}/redirect", *code).startswith(b"301")
    assert _curl(testbed, "client", f"{nginx.url}/missing", *code).startswith(b"404")
    headers = _curl(testbed, "client", f"{nginx.url}/api/v1/items", "-I")
    assert b"application/json" in headers


def test_nginx_access_log_counts_every_answered_request(testbed: Testbed) -> None:
    testbed.add_pod("client")
    quiet = start_nginx(testbed, testbed.add_pod("quiet"))
    nginx = start_nginx(testbed, testbed.add_pod("web"), access_log=True)
    before = access_count(nginx)  # the readiness probe only connects: no request
    for path in ("/", "/missing", "/api/v1/items"):
        _curl(testbed, "client", f"{nginx.url}{path}")
    _curl(testbed, "client", f"{quiet.url}/")
    assert (before, access_count(nginx)) == (0, 3)
    assert access_count(quiet) == 0


def test_api_answers_json_chunked_gzip_and_echo(testbed: Testbed) -> None:
    testbed.add_pod("client")
    api = start_api(testbed, testbed.add_pod("api"))
    assert b'"user":"eve"' in _curl(testbed, "client", f"{api.url}/api/v1/cart?user=eve")
    assert b"Transfer-Encoding: chunked" in _curl(testbed, "client", f"{api.url}/chunked", "-i")
    assert b'"compressed":true' in _curl(testbed, "client", f"{api.url}/gzip", "--compressed")
    assert _curl(testbed, "client", f"{api.url}/echo", "-d", "ping") == b"ping"


@pytest.mark.skipif(shutil.which("dig") is None, reason="needs dig")
def test_dnsmasq_answers_fixed_records_and_nxdomain(testbed: Testbed) -> None:
    client = testbed.add_pod("client", "shop")
    dns = start_dnsmasq(testbed, testbed.add_pod("dns", "kube-system"))

    def dig(name: str, qtype: str, *opts: str) -> str:
        argv = ["dig", "+time=1", "+tries=2", f"@{dns.ip}", name, qtype, *opts]
        return testbed.run(client, argv, timeout=10).stdout.decode()

    assert dig("client.shop.pilotfish.test", "A", "+short").strip() == client.ip
    assert dig("api.pilotfish.test", "AAAA", "+short").strip() == "fd00:213::1"
    assert dig("info.pilotfish.test", "TXT", "+short").strip() == '"pilotfish testbed"'
    assert "status: NXDOMAIN" in dig("nothing.pilotfish.test", "A")
    assert "status: NXDOMAIN" in dig("example.com", "A")


def test_redis_answers_ping(testbed: Testbed) -> None:
    client = testbed.add_pod("client")
    redis = start_redis(testbed, testbed.add_pod("redis"))
    if shutil.which("redis-cli"):
        argv = ["redis-cli", "-h", redis.ip, "-p", "6379", "PING"]
    else:
        code = (
            "import socket,sys; s=socket.create_connection((sys.argv[1],6379),5);"
            "s.sendall(b'*1\\r\\n$4\\r\\nPING\\r\\n'); print(s.recv(64).decode().strip())"
        )
        argv = [sys.executable, "-c", code, redis.ip]
    assert testbed.run(client, argv).stdout.strip() == b"PONG"


def test_servers_stop_with_the_testbed_and_their_files_go() -> None:
    with Testbed() as tb:
        pod = tb.add_pod("web")
        nginx = start_nginx(tb, pod)
        redis = start_redis(tb, pod)
        assert nginx.workdir.is_dir()
    assert nginx.proc.poll() is not None and redis.proc.poll() is not None
    assert not pid_alive(nginx.proc.pid)
    assert not nginx.workdir.exists() and not redis.workdir.exists()


def test_a_server_that_cannot_bind_fails_with_its_log(testbed: Testbed) -> None:
    pod = testbed.add_pod("web")
    start_api(testbed, pod, 8080)
    with pytest.raises(TestbedError, match="did not answer") as info:
        start_redis(testbed, pod, port=8080, ready_s=1)  # port taken by the API server
    assert "8080" in str(info.value)
    assert socket.inet_aton(pod.ip)
