"""probe: the DNS query builder and the bounded readiness waits, on loopback."""

from __future__ import annotations

import socket
import threading

import dnslib
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.testbed import probe

LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


def test_dns_query_is_what_dnslib_reads() -> None:
    parsed = dnslib.DNSRecord.parse(probe.dns_query(0x1234, "api.pilotfish.test", 28))
    assert parsed.header.id == 0x1234 and parsed.header.rd == 1
    assert str(parsed.q.qname) == "api.pilotfish.test." and parsed.q.qtype == 28


@given(
    st.integers(0, 0xFFFF), st.lists(LABEL, min_size=1, max_size=5), st.sampled_from([1, 16, 28])
)
def test_dns_query_round_trips(qid: int, labels: list[str], qtype: int) -> None:
    name = ".".join(labels)
    parsed = dnslib.DNSRecord.parse(probe.dns_query(qid, name, qtype))
    assert (parsed.header.id, str(parsed.q.qname), parsed.q.qtype) == (qid, name + ".", qtype)


def test_tcp_ready_on_a_listening_and_a_closed_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert probe.tcp_ready("127.0.0.1", port)
    assert not probe.tcp_ready("127.0.0.1", port)


def test_dns_ready_needs_a_matching_reply() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def answer() -> None:
            data, peer = server.recvfrom(512)
            server.sendto(dnslib.DNSRecord.parse(data).reply().pack(), peer)

        thread = threading.Thread(target=answer)
        thread.start()
        assert probe.dns_ready("127.0.0.1", port)
        thread.join()
        assert not probe.dns_ready("127.0.0.1", port)  # nobody answers now: 0.3 s timeout


def test_wait_is_bounded_and_main_reports_failure() -> None:
    calls: list[int] = []
    assert not probe.wait(lambda: bool(calls.append(1)), timeout_s=0.1)
    assert 1 <= len(calls) <= 10
    assert probe.wait(lambda: True, timeout_s=0)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert probe.main(["tcp", "127.0.0.1", str(port), "--timeout", "1"]) == 0
    assert probe.main(["tcp", "127.0.0.1", str(port), "--timeout", "0.1"]) == 1
