"""The hub's ASGI app: the API of `api.app` over a `FederatedBackend`, with a notice.

Every HTTP answer carries a `Pilotfish-Unavailable` header listing the URLs of the workers
that are down when it is sent (absent when all are up), so a client knows that a list,
a stats answer or an export is missing their part.  The same list is in /readyz and
/api/workers, and live streams get `notice` messages (see `hub.live`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pilotfish.api.app import STATIC_DIR, create_app
from pilotfish.hub.backend import FederatedBackend

NOTICE_HEADER: Final = "pilotfish-unavailable"


class _UnavailableNotice:
    """ASGI middleware adding NOTICE_HEADER to HTTP answers while workers are down."""

    def __init__(self, app: ASGIApp, backend: FederatedBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_notice(message: Message) -> None:
            if message["type"] == "http.response.start":
                down = self.backend.unavailable()
                if down:
                    headers = [
                        *message.get("headers", []),
                        (NOTICE_HEADER.encode(), " ".join(down).encode()),
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_notice)


def hub_app(backend: FederatedBackend, static_dir: Path | None = STATIC_DIR) -> Starlette:
    """The API and dashboard served by a hub over `backend`."""
    app = create_app(backend, static_dir)
    app.add_middleware(_UnavailableNotice, backend=backend)
    return app
