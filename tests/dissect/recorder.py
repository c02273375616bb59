"""Test helper: a loopback TCP proxy that records what each direction carried, in order.

Each `recv()` on either side becomes one event (direction, bytes, monotonic time), the way the
flow table hands reassembled data to a dissector.  Loopback only; the proxy accepts a bounded
number of connections and stops when asked.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from pilotfish.model import CLIENT, SERVER

Event = tuple[int, bytes, float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream` and records each connection."""

    def __init__(self, upstream: int, max_connections: int = 8) -> None:
        self.upstream = upstream
        self.max_connections = max_connections
        self.connections: list[list[Event]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        handled = 0
        while not self._stop.is_set() and handled < self.max_connections:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            handled += 1
            events: list[Event] = []
            self.connections.append(events)
            self._pump(client, socket.create_connection(("127.0.0.1", self.upstream)), events)

    def _pump(self, client: socket.socket, server: socket.socket, events: list[Event]) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, (CLIENT, server))
        sel.register(server, selectors.EVENT_READ, (SERVER, client))
        open_sides = 2
        deadline = time.monotonic() + 20
        while open_sides and time.monotonic() < deadline and not self._stop.is_set():
            for key, _ in sel.select(0.2):
                direction, peer = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data = sock.recv(65536)
                if data:
                    events.append((direction, data, time.monotonic()))
                    peer.sendall(data)
                else:
                    sel.unregister(sock)
                    open_sides -= 1
                    with suppress(OSError):
                        peer.shutdown(socket.SHUT_WR)
        sel.close()
        client.close()
        server.close()

    @contextmanager
    def running(self) -> Iterator[Recorder]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)
            self._listener.close()
