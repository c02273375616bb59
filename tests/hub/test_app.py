"""The hub's app: the worker API over a FederatedBackend, with every answer naming the
workers that are down (header) and live clients told (notice)."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from pilotfish.hub.app import NOTICE_HEADER, hub_app
from pilotfish.hub.backend import FederatedBackend
from tests.api.served import served
from tests.hub.conftest import Cluster


def test_no_notice_while_every_worker_is_up(cluster: Cluster) -> None:
    for path in ("/api/entries", "/api/workers", "/readyz", "/metrics", "/"):
        r = cluster.get(path)
        assert r.status_code == 200 and NOTICE_HEADER not in r.headers
    assert {w["state"] for w in cluster.get("/api/workers").json()} == {"up"}


def test_down_workers_are_named_on_answers_and_streams(cluster: Cluster) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    backend = FederatedBackend([dead, cluster.workers["b"]], timeout=1.0)
    with served(hub_app(backend, None)) as port:
        r = httpx.get(f"http://127.0.0.1:{port}/api/servicemap", timeout=10)
        assert r.status_code == 200 and r.headers[NOTICE_HEADER] == dead
        with connect(f"ws://127.0.0.1:{port}/api/stream", open_timeout=10) as ws:
            messages = [json.loads(ws.recv(10)) for _ in range(2)]
    assert messages[0]["type"] == "hello"
    assert messages[1]["type"] == "notice" and messages[1]["worker"] == dead
    assert messages[1]["state"] == "down" and messages[1]["error"]


def test_schemathesis_finds_no_failure_through_the_hub(cluster: Cluster) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import given, settings
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{cluster.hub}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=10, deadline=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            # most schema-valid strings are not queries nor hub cursors: 400 by design
            case.call_and_validate(base_url=cluster.hub, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:  # collect every operation's failure
            failures.append(f"{operation.label}: {exc}")
    assert failures == []
    assert {w["state"] for w in cluster.get("/api/workers").json()} == {"up"}
