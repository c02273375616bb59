"""A worker as the hub sees it: failures mark it down with exponential backoff (exact, on
an injected clock), 4xx answers are not failures, answers are bounded in size and time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pilotfish.hub.client import WorkerClient, WorkerUnavailable
from tests.api.served import served


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _app() -> Starlette:
    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True, "node": "n1"})

    async def missing(request: Request) -> Response:
        return JSONResponse({"error": "no such entry"}, 404)

    async def big(request: Request) -> Response:
        return Response(b"[" + b"1," * 5000 + b"1]", media_type="application/json")

    async def garbage(request: Request) -> Response:
        return Response(b"<html>", media_type="text/html")

    async def broken(request: Request) -> Response:
        return JSONResponse({"error": "internal error"}, 500)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(1)
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/readyz", ready),
            Route("/missing", missing),
            Route("/big", big),
            Route("/garbage", garbage),
            Route("/broken", broken),
            Route("/slow", slow),
        ]
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served(_app()) as port:
        yield f"http://127.0.0.1:{port}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_backoff_doubles_up_to_its_cap_and_a_success_resets_it() -> None:
    clock = Clock()
    w = WorkerClient(
        f"http://127.0.0.1:{_closed_port()}", backoff_base=0.5, backoff_max=3, clock=clock
    )

    async def scenario() -> list[float]:
        delays = []
        for _ in range(5):
            assert w.available()
            with pytest.raises(WorkerUnavailable):
                await w.get_json("/readyz")
            delays.append(w.retry_at - clock.now)
            with pytest.raises(WorkerUnavailable, match="retrying later"):
                await w.get_json("/readyz")  # skipped at once while in backoff
            clock.now = w.retry_at
        await w.close()
        return delays

    assert asyncio.run(scenario()) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert w.state == "down" and w.failures == 5 and "ConnectError" in w.last_error
    assert w.describe()["retry_in_s"] == 0 and w.requests_total == 5
    w.mark_up(0.01)
    assert w.failures == 0 and w.available() and w.describe()["up"] is True


def test_answers_4xx_are_returned_and_probe_learns_the_node(url: str) -> None:
    async def scenario() -> tuple[int, object, bool, str]:
        w = WorkerClient(url)
        status, body = await w.get_json("/missing")
        ok = await w.probe()
        await w.close()
        return status, body, ok, w.node + ":" + w.state

    assert asyncio.run(scenario()) == (404, {"error": "no such entry"}, True, "n1:up")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/big", "larger than"),
        ("/garbage", "not JSON"),
        ("/broken", "answered 500"),
        ("/slow", "Timeout"),
    ],
)
def test_bad_answers_mark_the_worker_down(url: str, path: str, error: str) -> None:
    async def scenario() -> WorkerClient:
        w = WorkerClient(url, max_bytes=1000, timeout=0.3 if path == "/slow" else 10)
        with pytest.raises(WorkerUnavailable):
            await w.get_json(path)
        await w.close()
        return w

    w = asyncio.run(scenario())
    assert w.state == "down" and error in w.last_error


def test_ws_url_follows_the_scheme() -> None:
    assert WorkerClient("http://h:1/").ws_url == "ws://h:1"
    assert WorkerClient("https://h:1").ws_url == "wss://h:1"
