"""`pilotfish read` on real HTTP/1.x traffic: curl against nginx and the testbed API.

The recording (see `scenario.HTTP_PLAN`) holds keep-alive and one-shot connections, HEAD, a
POST with a body, 404s, a 301, a chunked answer, gzip answers with and without an
Accept-Encoding, a 100 KB body, an HTTP/1.0 request and a slow answer.  pilotfish must report
exactly one entry per request with the right endpoints, timings that match the packets,
sizes that add up to the TCP payload, decoded bodies, and the same request/response pairs
that tshark finds in the same file.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from pilotfish.testbed.apiserver import ITEMS
from pilotfish.testbed.services import BIG_BYTES
from tests.integration.scenario import (
    API_PORT,
    HTTP_PLAN,
    POST_BODY,
    ROOT_ONLY,
    SLOW_MS,
    HttpCapture,
    LoadCapture,
    Txn,
    entries,
    expected,
    frames_of,
    tshark,
    txn,
    txns,
)

pytestmark = [pytest.mark.integration, ROOT_ONLY]

KEPT_BYTES = 64 * 1024  # the default body limit


@pytest.fixture(scope="module", params=["offloads-off", "offloads-on"])
def capture(request: pytest.FixtureRequest) -> HttpCapture:
    """The plan recorded twice: veth offloads off (wire-sized segments, good checksums) and
    on (GSO/GRO super-frames up to 64 KB, TCP checksums left to the hardware)."""
    name = "http_capture" if request.param == "offloads-off" else "http_capture_offloads"
    found: HttpCapture = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="module")
def docs(capture: HttpCapture) -> list[dict[str, Any]]:
    return entries(capture.path, "--quiet")


def by_target(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Entries by (method, path), for targets the plan requests once."""
    once = {k for k, n in Counter((d["method"], d["path"]) for d in docs).items() if n == 1}
    return {(d["method"], d["path"]): d for d in docs if (d["method"], d["path"]) in once}


def payload_frames(capture: HttpCapture) -> dict[int, list[tuple[float, bool, int]]]:
    """tshark's view of the TCP payload: client port -> [(time, from_client, bytes)]."""
    rows = tshark(
        capture.path,
        "tcp.len > 0 && !tcp.analysis.retransmission",
        "frame.time_epoch",
        "ip.src",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.len",
    )
    out: dict[int, list[tuple[float, bool, int]]] = defaultdict(list)
    for when, src, sport, dport, length in rows:
        from_client = src == capture.client
        out[int(sport if from_client else dport)].append((float(when), from_client, int(length)))
    return out


def test_the_recording_is_what_it_claims(capture: HttpCapture) -> None:
    sizes = [f[3] for f in frames_of(capture.path)]
    assert (max(sizes) > 1514) is capture.offloads  # super-frames only with offloads


# --- exactly the planned transactions ----------------------------------------------------


def test_one_entry_per_planned_request(docs: list[dict[str, Any]]) -> None:
    assert txns(docs, "http") == expected(HTTP_PLAN)
    assert len(docs) == sum(len(step.expect) for step in HTTP_PLAN)
    assert all(d["flags"] == [] for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)


def test_entries_come_in_timestamp_order(docs: list[dict[str, Any]]) -> None:
    stamps = [d["timestamp"] for d in docs]
    assert stamps == sorted(stamps)


def test_endpoints_are_the_pods_and_connections_follow_the_plan(
    docs: list[dict[str, Any]], capture: HttpCapture
) -> None:
    # Entries come in request order, which is plan order: curl ran the steps one by one.
    cursor = 0
    for step in HTTP_PLAN:
        mine = docs[cursor : cursor + len(step.expect)]
        cursor += len(step.expect)
        assert [txn(d) for d in mine] == list(step.expect)
        server = (capture.web, 80) if "{web}" in step.argv[-1] else (capture.api, API_PORT)
        ports = {d["src"]["port"] for d in mine}
        assert len(ports) == 1, f"{step.argv}: one connection per curl run"
        for d in mine:
            assert d["src"]["ip"] == capture.client
            assert 1024 <= d["src"]["port"] <= 65535
            assert (d["dst"]["ip"], d["dst"]["port"]) == server
            assert d["stream"] == mine[0]["stream"]
    assert len({d["src"]["port"] for d in docs}) == len(HTTP_PLAN)
    assert len({d["stream"] for d in docs}) == len(HTTP_PLAN)


# --- timing and sizes against the packets ---------------------------------------------------


def test_timestamps_and_elapsed_match_the_first_payload_bytes(
    docs: list[dict[str, Any]], capture: HttpCapture
) -> None:
    frames = payload_frames(capture)
    first_of_connection: dict[int, dict[str, Any]] = {}
    for d in docs:
        first_of_connection.setdefault(d["src"]["port"], d)
    assert set(first_of_connection) == set(frames)
    for port, d in first_of_connection.items():
        request_ts = next(t for t, from_client, _ in frames[port] if from_client)
        response_ts = next(t for t, from_client, _ in frames[port] if not from_client)
        assert d["timestamp"] == pytest.approx(request_ts, abs=2e-6)
        assert d["elapsed_us"] == pytest.approx((response_ts - request_ts) * 1e6, abs=2)
    for d in docs:
        assert 0 < d["elapsed_us"] < 3_000_000, d["summary"]
    slow = next(d for d in docs if d["path"].startswith("/slow"))
    assert slow["elapsed_us"] >= SLOW_MS * 1000  # the server slept that long before answering


def payload_bytes(capture: HttpCapture) -> dict[tuple[int, bool], int]:
    """Bytes of TCP sequence space each direction of each connection carried: the union of
    its segments' [seq, seq + len) ranges, so a segment seen twice counts once whatever
    tshark's retransmission analysis makes of it (with offloads, super-frames can reach the
    capture out of order, and tshark then flags a first transmission as a retransmission)."""
    rows = tshark(
        capture.path, "tcp.len > 0", "ip.src", "tcp.srcport", "tcp.dstport", "tcp.seq", "tcp.len"
    )
    ranges: dict[tuple[int, bool], list[tuple[int, int]]] = defaultdict(list)
    for src, sport, dport, seq, length in rows:
        from_client = src == capture.client
        start = int(seq)
        ranges[(int(sport if from_client else dport), from_client)].append(
            (start, start + int(length))
        )
    covered: dict[tuple[int, bool], int] = {}
    for key, spans in ranges.items():
        total, reach = 0, None
        for start, end in sorted(spans):
            if reach is None or start > reach:
                total += end - start
                reach = end
            elif end > reach:
                total += end - reach
                reach = end
        covered[key] = total
    return covered


def test_sizes_add_up_to_the_tcp_payload_of_each_connection(
    docs: list[dict[str, Any]], capture: HttpCapture
) -> None:
    covered = payload_bytes(capture)
    assert {port for port, _ in covered} == {d["src"]["port"] for d in docs}
    for (port, from_client), size in covered.items():
        mine = [d for d in docs if d["src"]["port"] == port]
        side = "request" if from_client else "response"
        assert sum(d[side]["size"] for d in mine) == size, (port, side)


# --- bodies ---------------------------------------------------------------------------------


def test_chunked_body_is_joined(docs: list[dict[str, Any]]) -> None:
    response = by_target(docs)[("GET", "/chunked")]["response"]
    assert response["headers"]["transfer-encoding"] == "chunked"
    assert json.loads(response["body"]) == {"items": list(ITEMS)}
    assert response["body_size"] == len(response["body"])
    assert response["size"] > response["body_size"] + 4 * 4  # chunk framing counted on the wire


def test_gzip_body_is_decoded_with_and_without_accept_encoding(
    docs: list[dict[str, Any]],
) -> None:
    plain = by_target(docs)[("GET", "/gzip")]
    asked = by_target(docs)[("GET", "/gzip?accept=1")]
    assert "accept-encoding" not in plain["request"]["headers"]
    assert "gzip" in asked["request"]["headers"]["accept-encoding"]
    for d in (plain, asked):
        response = d["response"]
        assert response["headers"]["content-encoding"] == "gzip"
        assert json.loads(response["body"]) == {"items": list(ITEMS), "compressed": True}
        wire_body = int(response["headers"]["content-length"])
        assert response["body_size"] == len(response["body"]) > wire_body


def test_post_body_is_seen_on_both_sides(docs: list[dict[str, Any]]) -> None:
    echo = by_target(docs)[("POST", "/echo")]
    assert echo["request"]["body"] == echo["response"]["body"] == POST_BODY
    assert echo["request"]["body_size"] == len(POST_BODY)
    assert echo["request"]["headers"]["content-type"] == "text/plain"
    assert echo["response"]["headers"]["x-echo-length"] == str(len(POST_BODY))


def test_head_has_no_body_but_keeps_its_content_length(docs: list[dict[str, Any]]) -> None:
    head = by_target(docs)[("HEAD", "/")]["response"]
    assert head.get("body", "") == "" and head.get("body_size", 0) == 0
    assert int(head["headers"]["content-length"]) > 0


def test_error_and_redirect_answers(docs: list[dict[str, Any]]) -> None:
    targets = by_target(docs)
    redirect = targets[("GET", "/redirect")]["response"]
    assert redirect["headers"]["location"].endswith("/")
    assert "301 Moved Permanently" in redirect["body"]
    assert "404 Not Found" in targets[("GET", "/missing")]["response"]["body"]
    assert json.loads(targets[("GET", "/nope")]["response"]["body"])["path"] == "/nope"
    cart = json.loads(targets[("GET", "/api/v1/cart?user=alice")]["response"]["body"])
    assert cart["user"] == "alice"


def test_http10_request_and_answer(docs: list[dict[str, Any]]) -> None:
    old = [d for d in docs if d["request"].get("version") == "HTTP/1.0"]
    assert [txn(d) for d in old] == [("GET", "/api/v1/items", 200)]
    assert json.loads(old[0]["response"]["body"])["count"] == len(ITEMS)


def test_big_binary_body_is_cut_at_the_limit_and_marked(docs: list[dict[str, Any]]) -> None:
    big = by_target(docs)[("GET", "/big")]["response"]
    assert big["body_size"] == BIG_BYTES and big["truncated"] is True
    assert big["encoding"] == "base64"
    kept = base64.b64decode(big["body"])
    assert kept == bytes(i % 251 for i in range(KEPT_BYTES))
    assert big["size"] > BIG_BYTES


def test_body_limit_option_cuts_every_body(capture: HttpCapture) -> None:
    limit = 16
    for d in entries(capture.path, "--quiet", "--body-limit", str(limit)):
        for side in ("request", "response"):
            payload = d[side]
            size = payload.get("body_size", 0)
            kept = payload.get("body", "")
            if payload.get("encoding") == "base64":
                kept = base64.b64decode(kept)
            assert len(kept) == min(size, limit), (d["summary"], side)
            assert payload.get("truncated", False) is (size > limit), (d["summary"], side)
    echo = next(
        d for d in entries(capture.path, "-q", "--body-limit", "5") if d["method"] == "POST"
    )
    assert echo["request"]["body"] == POST_BODY[:5]


# --- tshark, the second opinion ------------------------------------------------------------


def tshark_http_pairs(path: Path) -> list[tuple[str, str, int, int]]:
    """(method, target, status, client port) of every response tshark pairs with a request;
    fails if tshark saw a request without an answer."""
    requests = {
        row[0]: row[1:]
        for row in tshark(
            path,
            "http.request",
            "frame.number",
            "http.request.method",
            "http.request.uri",
            "tcp.srcport",
        )
    }
    pairs = []
    for request_in, code in tshark(path, "http.response", "http.request_in", "http.response.code"):
        method, uri, client_port = requests.pop(request_in)
        pairs.append((method, uri, int(code), int(client_port)))
    assert requests == {}, "tshark saw requests without answers"
    return pairs


def test_request_response_pairs_agree_with_tshark(
    docs: list[dict[str, Any]], capture: HttpCapture
) -> None:
    theirs = Counter(tshark_http_pairs(capture.path))
    assert Counter((*txn(d), d["src"]["port"]) for d in docs) == theirs


# --- volume: the testbed's bounded load loop ------------------------------------------------


def test_bounded_load_is_counted_exactly(load_capture: LoadCapture) -> None:
    load = load_capture.load
    assert load.errors == 0 and load.ok == load.sent > 0, load
    want = Counter({load_capture.expect[t]: c["ok"] for t, c in load.per_target.items()})
    got = entries(load_capture.path, "-q")
    assert Counter(txn(d) for d in got) == want
    assert all(d["flags"] == [] for d in got)
    assert [d["timestamp"] for d in got] == sorted(d["timestamp"] for d in got)
    answered = tshark(load_capture.path, "dns.flags.response == 1 && !icmp", "dns.qry.name")
    theirs: Counter[Txn] = Counter(pair[:3] for pair in tshark_http_pairs(load_capture.path))
    theirs += Counter(("AAAA", row[0], "NOERROR") for row in answered)
    assert theirs == want
