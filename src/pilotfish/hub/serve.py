"""`pilotfish hub`: serve the federated API until SIGINT/SIGTERM.

`run_hub(urls, host, port)` builds a `FederatedBackend` over the worker URLs and serves
`hub.app.hub_app` with uvicorn.  Once the server listens (the backend has probed every
worker once), it prints `pilotfish hub: serving http://HOST:PORT (N workers)` on stderr.
SIGINT and SIGTERM stop it cleanly (exit 0); a port that cannot be bound is exit 1 with
the reason.  Workers need not be up at start: the hub serves and reports them as down,
and keeps retrying them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from pilotfish.api.app import STATIC_DIR
from pilotfish.hub.app import hub_app
from pilotfish.hub.backend import FederatedBackend
from pilotfish.hub.client import DEFAULT_TIMEOUT

STARTUP_TIMEOUT_S = 30.0


class _Server(uvicorn.Server):
    """uvicorn's server, but a stop signal ends it with exit 0 instead of re-raising."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_hub(
    urls: Sequence[str],
    host: str = "127.0.0.1",
    port: int = 8898,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    static_dir: Path | None = STATIC_DIR,
) -> int:
    """Serve until a signal; the exit code (0 after a clean stop)."""
    backend = FederatedBackend(urls, timeout=timeout)
    config = uvicorn.Config(
        hub_app(backend, static_dir),
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws_ping_interval=20.0,
    )
    server = _Server(config)
    return asyncio.run(_serve(server, host, port, len(backend.clients)))


async def _serve(server: uvicorn.Server, host: str, port: int, workers: int) -> int:
    announce = asyncio.create_task(_announce(server, host, port, workers))
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when it cannot bind (it has logged why)
        print(f"pilotfish hub: cannot serve on {host}:{port}", file=sys.stderr)
        return 1
    finally:
        announce.cancel()
    return 0 if server.started else 1


async def _announce(server: uvicorn.Server, host: str, port: int, workers: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while not server.started:
        if loop.time() > deadline:
            return
        await asyncio.sleep(0.02)
    noun = "worker" if workers == 1 else "workers"
    print(f"pilotfish hub: serving http://{host}:{port} ({workers} {noun})", file=sys.stderr)
