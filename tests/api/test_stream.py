"""The live stream against a real uvicorn server: filtering, errors, slow and vanishing
clients.  Memory per client stays at its queue bound; drops are counted exactly."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import msgspec
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pilotfish.api.app import create_app
from pilotfish.api.backend import LocalBackend
from pilotfish.api.live import LiveFeed, Subscription
from pilotfish.api.stream import MAX_BATCH, MAX_BATCH_BYTES, EncodedEntries, query_error
from tests import waiting
from tests.api.served import served
from tests.store.entries import make

DEADLINE_S = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """`tests.waiting.wait_for`, polling every 10 ms (the feed delivers within milliseconds)."""
    waiting.wait_for(condition, what, DEADLINE_S, poll_s=0.01)


@pytest.fixture
def server(backend: LocalBackend) -> Iterator[tuple[str, LiveFeed]]:
    backend.feed = LiveFeed(max_queue=1000, max_handover=100_000)
    with served(create_app(backend, static_dir=None)) as port:
        yield f"ws://127.0.0.1:{port}/api/stream", backend.feed


def only_subscription(feed: LiveFeed) -> Subscription:
    wait_for(lambda: feed.clients == 1, "the subscription")
    (sub,) = feed.subscriptions()
    return sub


def test_each_entry_is_encoded_once_for_every_client() -> None:
    texts = EncodedEntries(size=2)
    a, twin = make(1), make(1)  # equal content and id, yet two entries
    first = texts.text(a)
    assert json.loads(first) == msgspec.to_builtins(a)
    assert texts.text(a) is first and texts.encoded == 1
    assert texts.text(twin) == first and texts.encoded == 2  # never served from a's text
    texts.text(make(2))
    texts.text(make(3))  # the bound: a's text is gone, so a is encoded again
    assert texts.text(a) == first and texts.encoded == 5
    b = make(2)
    (message,) = texts.messages([a, b])
    assert json.loads(message) == {
        "type": "entries",
        "count": 2,
        "entries": [msgspec.to_builtins(a), msgspec.to_builtins(b)],
    }
    # the next client with the same batch sends the same text; another batch is built anew
    assert texts.messages([a, b])[0] is message and texts.built == 1
    assert texts.messages([a, twin]) != [message] and texts.built == 2


def test_a_batch_too_big_for_one_message_is_split_in_order() -> None:
    texts = EncodedEntries(message_bytes=3 * MAX_BATCH_BYTES)
    big = [make(i, body="x" * (MAX_BATCH_BYTES // 3)) for i in range(5)]
    out = [json.loads(m) for m in texts.messages(big)]
    assert [m["count"] for m in out] == [2, 2, 1]
    assert [e["id"] for m in out for e in m["entries"]] == [e.id for e in big]
    assert all(len(m) <= MAX_BATCH_BYTES for m in texts.messages(big))
    assert texts.built == 3  # the second call was served from what the first built


def receive_entries(ws: Any, count: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Read `entries` messages until `count` entries came; (entries, size of each message)."""
    entries: list[dict[str, Any]] = []
    sizes: list[int] = []
    while len(entries) < count:
        msg = json.loads(ws.recv(10))
        assert msg["type"] == "entries" and msg["count"] == len(msg["entries"])
        entries += msg["entries"]
        sizes.append(msg["count"])
    return entries, sizes


def test_query_errors_are_checked_before_subscribing() -> None:
    assert query_error("") is None and query_error("http") is None
    error = query_error("http &&")
    assert error is not None and error["position"] == 7
    long = query_error("x" * 100_000)
    assert long is not None and "longer" in str(long["error"])


def test_entries_are_filtered_server_side(server: tuple[str, LiveFeed]) -> None:
    url, feed = server
    with connect(url + "?q=status_code%20%3E%3D%20500", open_timeout=10) as ws:
        assert json.loads(ws.recv(10)) == {"type": "hello", "query": "status_code >= 500"}
        only_subscription(feed)
        for i in range(20):
            feed.publish(make(i, status=503 if i % 5 == 0 else 200))
        got, _ = receive_entries(ws, 4)
        assert [e["id"] for e in got] == ["n-0", "n-5", "n-10", "n-15"]
    wait_for(lambda: feed.clients == 0, "the subscription to go")


def test_a_busy_stream_batches_entries_in_order(server: tuple[str, LiveFeed]) -> None:
    url, feed = server
    total = 3 * MAX_BATCH
    feed.max_queue = 2 * total  # room for all: this is about batching, not dropping
    with connect(url, open_timeout=10) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        sub = only_subscription(feed)
        feed.publish(make(0))  # a calm stream: one entry, one message
        assert receive_entries(ws, 1) == ([msgspec.to_builtins(make(0))], [1])
        for i in range(1, total + 1):
            feed.publish(make(i))
        got, sizes = receive_entries(ws, total)
        assert [e["id"] for e in got] == [f"n-{i}" for i in range(1, total + 1)]
        assert max(sizes) <= MAX_BATCH and len(sizes) < total // 10
        assert sub.dropped == 0 and sub.delivered == total + 1


def test_entries_lost_before_filtering_are_told_to_every_client(
    server: tuple[str, LiveFeed],
) -> None:
    url, feed = server
    with connect(url + "?q=http", open_timeout=10) as one, connect(url, open_timeout=10) as two:
        for ws in (one, two):
            assert json.loads(ws.recv(10))["type"] == "hello"
        wait_for(lambda: feed.clients == 2, "two subscriptions")
        feed.note_lost(7)
        for ws in (one, two):
            assert json.loads(ws.recv(10)) == {"type": "dropped", "count": 0, "unfiltered": 7}
    assert feed.lost_upstream == 7


def test_an_invalid_query_is_an_error_then_close_1008(server: tuple[str, LiveFeed]) -> None:
    url, feed = server
    with connect(url + "?q=status_code%20%3E%3D", open_timeout=10) as ws:
        msg = json.loads(ws.recv(10))
        assert msg["type"] == "error" and msg["position"] == 14 and msg["error"]
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert feed.clients == 0


def test_a_slow_reader_is_told_exactly_what_it_missed(server: tuple[str, LiveFeed]) -> None:
    url, feed = server
    total = 5000
    with connect(url, open_timeout=10, max_queue=4) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        sub = only_subscription(feed)
        for i in range(total):
            feed.publish(make(i))
        wait_for(lambda: sub.offered == total, "every entry offered")
        entries = dropped = 0
        while entries + dropped < total:
            msg = json.loads(ws.recv(10))
            if msg["type"] == "entries":
                entries += msg["count"]
            else:
                assert msg["type"] == "dropped" and msg["count"] > 0
                assert msg["unfiltered"] == 0
                dropped += msg["count"]
        assert dropped == sub.dropped > 0 and entries == sub.delivered


def offered(sub: Subscription, n: int) -> bool:
    return sub.offered == n


def stuck(sub: Subscription) -> bool:
    """Entries wait in the queue and the sender took none of them for a while."""
    before = sub.delivered
    time.sleep(0.2)
    return sub.pending > 0 and sub.delivered == before


def _raw_websocket(port: int) -> socket.socket:
    """A client that completes the handshake and then never reads again."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def test_a_client_that_never_reads_costs_its_queue_bound_and_no_more(
    backend: LocalBackend,
) -> None:
    feed = backend.feed = LiveFeed(max_queue=1000, max_handover=100_000)
    published = 50_000
    with served(create_app(backend, static_dir=None)) as port:
        sock = _raw_websocket(port)
        try:
            sub = only_subscription(feed)
            # first fill the socket buffers until the server's sender is stuck on them
            primed = 0
            while not stuck(sub):
                assert primed < 200_000, "the server never stopped sending"
                for _ in range(1000):
                    feed.publish(make(primed, body="x" * 100))
                    primed += 1
                wait_for(partial(offered, sub, primed), "the priming entries offered")
            taken, waiting, dropped = sub.delivered, sub.pending, sub.dropped
            # now 50k more while the client still reads nothing
            for i in range(published):
                feed.publish(make(i, body="x" * 100))
            wait_for(lambda: sub.offered == primed + published, "every entry offered")
            assert sub.delivered == taken  # nothing more left the server
            assert sub.pending == sub.max_queue == 1000
            assert sub.dropped - dropped == published - (1000 - waiting)
            assert feed.dropped() == sub.dropped and feed.overflow == 0
        finally:
            sock.close()  # abruptly, without a close frame
        wait_for(lambda: feed.clients == 0, "the vanished client to be noticed")
        assert feed.dropped() == sub.dropped


def test_one_client_too_many_is_told_to_come_back_later(backend: LocalBackend) -> None:
    feed = backend.feed = LiveFeed(max_clients=1)
    with served(create_app(backend, static_dir=None)) as port:
        url = f"ws://127.0.0.1:{port}/api/stream"
        with connect(url, open_timeout=10) as first:
            assert json.loads(first.recv(10))["type"] == "hello"
            with connect(url, open_timeout=10) as second:
                assert json.loads(second.recv(10))["type"] == "error"
                with pytest.raises(ConnectionClosed) as info:
                    second.recv(10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1013
            assert feed.clients == 1 and feed.refused == 1


def test_clients_that_vanish_are_unsubscribed(server: tuple[str, LiveFeed]) -> None:
    url, feed = server
    for _ in range(5):
        with connect(url, open_timeout=10) as ws:
            ws.recv(10)
            ws.socket.shutdown(socket.SHUT_RDWR)  # no close handshake
    wait_for(lambda: feed.clients == 0, "every subscription to go")
