"""`pilotfish read` on real DNS traffic: dig against dnsmasq over UDP and TCP.

The recording (see `scenario.DNS_PLAN`) asks A, AAAA and TXT questions of names dnsmasq
knows, and A/AAAA of a name it does not (NXDOMAIN), first over UDP, then over TCP (`+tcp`,
length-prefixed messages).  pilotfish must give one entry per question with method = qtype,
path = qname, status = rcode name and the answers dnsmasq gave; tshark on the same file
must agree on names, types, rcodes, sizes and timing.  The same exchange recorded inside the
server pod on `any` (Linux cooked capture) must give the same entries.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from dnslib import QTYPE, RCODE

from tests.integration.scenario import (
    DNS_NAMES,
    DNS_PLAN,
    DNS_TCP_STEPS,
    ROOT_ONLY,
    DnsCapture,
    content_key,
    entries,
    expected,
    tshark,
    txn,
    txns,
)

pytestmark = [pytest.mark.integration, ROOT_ONLY]


@pytest.fixture(scope="module")
def docs(dns_capture: DnsCapture) -> list[dict[str, Any]]:
    return entries(dns_capture.path, "--quiet")


def answers(entry: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["type"], a["data"]) for a in entry["response"].get("answers") or []]


def test_one_entry_per_question(docs: list[dict[str, Any]]) -> None:
    assert txns(docs, "dns") == expected(DNS_PLAN)
    assert [txn(d) for d in docs] == [t for step in DNS_PLAN for t in step.expect]
    assert all(d["flags"] == [] for d in docs)


def test_entries_are_in_order_between_the_client_and_dnsmasq(
    docs: list[dict[str, Any]], dns_capture: DnsCapture
) -> None:
    assert [d["timestamp"] for d in docs] == sorted(d["timestamp"] for d in docs)
    for d in docs:
        assert d["src"]["ip"] == dns_capture.client
        assert (d["dst"]["ip"], d["dst"]["port"]) == (dns_capture.dns, 53)
        assert 0 < d["elapsed_us"] < 3_000_000
    assert len({d["src"]["port"] for d in docs}) == len(DNS_PLAN)  # one conversation each


def test_answers_are_what_dnsmasq_holds(
    docs: list[dict[str, Any]], dns_capture: DnsCapture
) -> None:
    got = {(d["method"], d["path"]): answers(d) for d in docs}
    assert got[("A", DNS_NAMES["client"])] == [("A", dns_capture.client)]
    assert got[("AAAA", DNS_NAMES["api"])] == [("AAAA", "fd00:213::1")]
    # api's A record points at the testbed's first pod, the client.
    assert got[("A", DNS_NAMES["api"])] == [("A", dns_capture.client)]
    assert [data.strip('"') for _, data in got[("TXT", DNS_NAMES["info"])]] == ["pilotfish testbed"]
    assert got[("A", DNS_NAMES["nowhere"])] == got[("AAAA", DNS_NAMES["nowhere"])] == []
    for d in docs:
        assert d["request"]["questions"] == [
            {"name": d["path"], "type": d["method"], "class": "IN"}
        ]
        assert d["response"]["questions"] == d["request"]["questions"]


def dns_rows(capture: DnsCapture) -> list[list[str]]:
    """tshark's DNS messages (quoted queries inside ICMP errors excluded)."""
    return tshark(
        capture.path,
        "dns && !icmp",
        "frame.time_epoch",
        "dns.flags.response",
        "dns.id",
        "dns.qry.name",
        "dns.qry.type",
        "dns.flags.rcode",
        "ip.proto",
        "udp.srcport",
        "udp.dstport",
        "udp.length",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.len",
    )


def test_names_types_rcodes_sizes_and_timing_agree_with_tshark(
    docs: list[dict[str, Any]], dns_capture: DnsCapture
) -> None:
    queries: dict[tuple[int, str], tuple[float, int]] = {}
    theirs = []
    for when, response, msg_id, name, qtype, rcode, proto, *ports in dns_rows(dns_capture):
        usport, udport, ulen, tsport, tdport, tlen = ports
        tcp = proto == "6"
        client_port = int((tdport if tcp else udport) if response == "1" else (tsport or usport))
        size = int(tlen) if tcp else int(ulen) - 8
        if response != "1":
            queries[(client_port, msg_id)] = (float(when), size)
            continue
        asked_at, asked_size = queries.pop((client_port, msg_id))
        theirs.append(
            (
                client_port,
                tcp,
                QTYPE[int(qtype)],
                name,
                RCODE[int(rcode)],
                asked_size,
                size,
                asked_at,
                float(when) - asked_at,
            )
        )
    assert queries == {}, "tshark saw unanswered queries"
    assert len(theirs) == len(docs)
    tcp_ports = {row[0] for row in theirs if row[1]}
    assert tcp_ports == {d["src"]["port"] for d in docs[-DNS_TCP_STEPS:]}
    by_port = {row[0]: row for row in theirs}
    for d in docs:
        _port, _tcp, qtype, name, rcode, asked_size, size, asked_at, elapsed = by_port[
            d["src"]["port"]
        ]
        assert (d["method"], d["path"], d["status"]) == (qtype, name, rcode)
        assert (d["request"]["size"], d["response"]["size"]) == (asked_size, size)
        assert d["timestamp"] == pytest.approx(asked_at, abs=2e-6)
        assert d["elapsed_us"] == pytest.approx(elapsed * 1e6, abs=2)


def test_answer_data_agrees_with_tshark(
    docs: list[dict[str, Any]], dns_capture: DnsCapture
) -> None:
    rows = tshark(
        dns_capture.path,
        "dns.flags.response == 1 && !icmp",
        "dns.qry.name",
        "dns.qry.type",
        "dns.a",
        "dns.aaaa",
        "dns.txt",
    )
    theirs = Counter(
        (name, QTYPE[int(qtype)], a or aaaa or txt or None) for name, qtype, a, aaaa, txt in rows
    )
    ours = Counter(
        (d["path"], d["method"], answers(d)[0][1].strip('"') if answers(d) else None) for d in docs
    )
    assert ours == theirs


def test_cooked_capture_inside_the_server_pod_gives_the_same_entries(
    docs: list[dict[str, Any]], dns_capture: DnsCapture
) -> None:
    cooked = entries(dns_capture.cooked, "--quiet")
    assert [content_key(d) for d in cooked] == [content_key(d) for d in docs]
    for mine, there in zip(docs, cooked, strict=True):  # seen later, at the server's end
        assert there["timestamp"] >= mine["timestamp"]
        assert there["elapsed_us"] <= mine["elapsed_us"]
