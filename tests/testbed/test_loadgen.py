"""loadgen: target parsing and the count- and time-bounded loop, against loopback servers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.testbed import loadgen
from pilotfish.testbed.apiserver import make_server


@pytest.fixture(scope="module")
def api_port() -> Iterator[int]:
    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_parse_targets() -> None:
    http = loadgen.parse_target("http://10.213.0.2:8080/api?x=1")
    assert isinstance(http, loadgen._HttpTarget)
    assert (http.host, http.port, http.path) == ("10.213.0.2", 8080, "/api?x=1")
    dns = loadgen.parse_target("dns://10.213.0.5/api.pilotfish.test?type=aaaa")
    assert isinstance(dns, loadgen._DnsTarget)
    assert (dns.port, dns.name, dns.qtype) == (53, "api.pilotfish.test", 28)
    redis = loadgen.parse_target("redis://10.213.0.4/")
    assert isinstance(redis, loadgen._RedisTarget) and redis.port == 6379


@pytest.mark.parametrize(
    "bad",
    ["ftp://10.0.0.1/", "http:///path", "dns://10.0.0.1/", "dns://10.0.0.1/x?type=MX", "nonsense"],
)
def test_bad_targets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        loadgen.parse_target(bad)


@given(st.text(max_size=60))
def test_parse_target_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        loadgen.parse_target(text)


def test_loop_stops_at_the_request_count(api_port: int) -> None:
    url = f"http://127.0.0.1:{api_port}"
    result = loadgen.run([f"{url}/healthz", f"{url}/nope"], requests=7, duration_s=30)
    assert (result["sent"], result["ok"], result["errors"]) == (7, 7, 0)
    assert result["per_target"] == {
        f"{url}/healthz": {"sent": 4, "ok": 4, "errors": 0},
        f"{url}/nope": {"sent": 3, "ok": 3, "errors": 0},
    }


def test_loop_stops_at_the_deadline_with_an_injected_clock(api_port: int) -> None:
    ticks = iter(range(100))
    result = loadgen.run(
        [f"http://127.0.0.1:{api_port}/healthz"], 1000, duration_s=3, clock=lambda: next(ticks)
    )
    assert result["sent"] == 2  # clock reads 1 and 2 are before the deadline of 0 + 3


def test_unreachable_targets_count_errors() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    result = loadgen.run([f"http://127.0.0.1:{port}/", f"redis://127.0.0.1:{port}/"], 4, 10)
    assert (result["sent"], result["ok"], result["errors"]) == (4, 0, 4)


def test_redis_replies_are_read_whole() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                for reply in (b"+OK\r\n", b"$5\r\nhel", b"lo\r\n", b"+PONG\r\n"):
                    if reply != b"lo\r\n":
                        conn.recv(100)
                    conn.sendall(reply)

        thread = threading.Thread(target=serve)
        thread.start()
        result = loadgen.run([f"redis://127.0.0.1:{port}/"], 3, 10)
        thread.join()
    assert result["ok"] == 3


def test_main_prints_json_and_rejects_bad_specs(
    api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {"targets": [f"http://127.0.0.1:{api_port}/healthz"], "requests": 2, "duration_s": 5}
    assert loadgen.main([json.dumps(spec)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] == 2
    assert loadgen.main(["{not json"]) == 2
    assert (
        loadgen.main([json.dumps({"targets": ["gopher://x/"], "requests": 1, "duration_s": 1})])
        == 2
    )
    assert loadgen.main([]) == 2
