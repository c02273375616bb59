"""One node as two supervised OS processes: capture and API (`pilotfish worker`).

`run_node(settings, options)` forks

- the capture process: `worker.CaptureWorker` (live source -> spool + pipeline -> store),
  the only writer of the data directory, publishing finished entries to the API process
  over a Unix socket (`api.feedpipe.FeedSender`, which drops and counts rather than wait);
- the API process, at lower CPU priority (`os.nice(API_NICENESS)`): uvicorn serving
  `create_app(LocalBackend(...))` over the same store opened as a reader (SQLite refuses
  its writes) and the spool opened read-only, so heavy queries and many live clients
  compete with each other for CPU, not with capture.

The parent only supervises.  Once the capture source is open and the API answers /readyz
it prints `<banner>: serving http://HOST:PORT (node NAME, capture BACKEND)` on stderr.
SIGINT or SIGTERM stop both children (capture first, so its last entries are committed)
and `run_node` returns 0.  If either child ends on its own, the other is stopped, one line
says which died and how, and it returns 1; a capture source that cannot open returns 2
with its reason.  Each child also gets SIGTERM if the parent dies (PR_SET_PDEATHSIG).
Stopping is bounded: a child still running `STOP_GRACE_S` after SIGTERM is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import multiprocessing as mp
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pilotfish.capture.base import CaptureOptions, SourceUnavailable
from pilotfish.config import Settings
from pilotfish.worker import CaptureWorker, WorkerPaths

if TYPE_CHECKING:
    from pilotfish.api.backend import Backend

API_NICENESS = 10
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 30.0
_POLL_S = 0.1
_PR_SET_PDEATHSIG = 1
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


@dataclass(frozen=True)
class NodeOptions:
    """How to run one node (see the module docstring)."""

    capture: CaptureOptions
    data_dir: Path
    backend: str = "best"
    host: str = "127.0.0.1"
    port: int = 8899
    static_dir: Path | None = None
    banner: str = "pilotfish worker"


def feed_socket_path(data_dir: Path) -> Path:
    """Where the capture process reaches the API process (short enough for sun_path)."""
    path = data_dir / "feed.sock"
    if len(os.fsencode(path.absolute())) <= _MAX_SOCKET_PATH:
        return path.absolute()
    return Path(tempfile.mkdtemp(prefix="pilotfish-")) / "feed.sock"


def describe_exit(code: int | None) -> str:
    """`exit code N` or `killed by SIGNAME` for a child's exitcode."""
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def run_node(
    settings: Settings, options: NodeOptions, say: Callable[[str], None] | None = None
) -> int:
    """Run capture and API until a signal or a child's death; returns the exit code."""
    tell = say if say is not None else _stderr
    return _Supervisor(settings, options, tell).run()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Supervisor:
    def __init__(self, settings: Settings, options: NodeOptions, say: Callable[[str], None]):
        self.settings = settings
        self.options = options
        self.say = say
        self.stop_requested = False
        self.paths = WorkerPaths(options.data_dir)
        self.socket = feed_socket_path(options.data_dir)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True

    def run(self) -> int:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("fork")
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        parent_end, child_end = ctx.Pipe(duplex=False)
        me = os.getpid()
        api = ctx.Process(target=_api_main, args=(self.settings, self.options, self.socket, me))
        capture = ctx.Process(
            target=_capture_main, args=(self.settings, self.options, self.socket, child_end, me)
        )
        procs: dict[str, BaseProcess] = {"API": api, "capture": capture}
        try:
            api.start()
            capture.start()
            child_end.close()
            return self._supervise(procs, parent_end)
        finally:
            self._stop(procs)
            for signum, handler in old.items():
                signal.signal(signum, handler)
            parent_end.close()

    def _supervise(self, procs: dict[str, BaseProcess], conn: Connection) -> int:
        name = self.options.banner
        backend = self._wait_ready(procs, conn)
        if isinstance(backend, int):
            return backend
        host = self.options.host
        self.say(
            f"{name}: serving http://{_url_host(host)}:{self.options.port} "
            f"(node {self.settings.node}, capture {backend})"
        )
        sentinels = [p.sentinel for p in procs.values()]
        while not self.stop_requested:
            # Ctrl-C reaches the whole process group: a child stopping on it is no death
            if wait(sentinels, timeout=_POLL_S) and not self.stop_requested:
                return self._died(procs)
        return 0

    def _wait_ready(self, procs: dict[str, BaseProcess], conn: Connection) -> str | int:
        """The capture backend's name once both sides are up, else the exit code."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        backend: str | None = None
        answering = False
        while backend is None or not answering:
            if self.stop_requested:
                return 0
            if backend is None and conn.poll(0):
                try:
                    kind, text = conn.recv()
                except EOFError:
                    kind, text = "gone", ""
                if kind == "error":
                    self.say(f"{self.options.banner}: capture: {text}")
                    return 2
                backend = text if kind == "open" else None
            if any(not p.is_alive() for p in procs.values()):
                return self._died(procs)
            if not answering:
                answering = _answers_readyz(self.options.host, self.options.port)
            if time.monotonic() > deadline:
                missing = "the capture source" if backend is None else "the API"
                self.say(f"{self.options.banner}: {missing} not ready after {READY_TIMEOUT_S} s")
                return 1
            time.sleep(_POLL_S)
        return backend

    def _died(self, procs: dict[str, BaseProcess]) -> int:
        ready = wait([p.sentinel for p in procs.values()], timeout=0)
        for name, proc in procs.items():
            if proc.sentinel in ready or not proc.is_alive():
                # the sentinel closes a moment before the process can be reaped: wait for it
                proc.join(STOP_GRACE_S)
                others = [n for n in procs if n != name]
                self.say(
                    f"{self.options.banner}: the {name} process ended "
                    f"({describe_exit(proc.exitcode)}); stopping the {' and '.join(others)} "
                    "process"
                )
                return 2 if name == "capture" and proc.exitcode == 2 else 1
        return 1

    def _stop(self, procs: dict[str, BaseProcess]) -> None:
        for name in ("capture", "API"):  # capture first: it commits its last entries
            proc = procs[name]
            if proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join(STOP_GRACE_S)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _answers_readyz(host: str, port: int) -> bool:
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    conn = http.client.HTTPConnection(target, port, timeout=1.0)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


# --- the children ----------------------------------------------------------------------------


def _child_setup(parent: int) -> None:
    """Die with the parent; signals back to their defaults (each child sets its own)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def _capture_main(
    settings: Settings, options: NodeOptions, feed_path: Path, conn: Connection, parent: int
) -> None:
    from pilotfish.api.feedpipe import FeedSender

    _child_setup(parent)
    sender = FeedSender(feed_path)
    worker = CaptureWorker(
        settings, options.capture, WorkerPaths(options.data_dir), options.backend, feed=sender
    )
    worker.opened = lambda name: conn.send(("open", name))
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: worker.stop())
    try:
        worker.run()
    except SourceUnavailable as exc:
        conn.send(("error", str(exc)))
        sys.exit(2)
    finally:
        sender.close()
        conn.close()


def _api_main(settings: Settings, options: NodeOptions, feed_path: Path, parent: int) -> None:
    from pilotfish.api.backend import LocalBackend
    from pilotfish.store.spool import PcapSpool
    from pilotfish.store.sqlite import SqliteStore

    _child_setup(parent)
    os.nice(API_NICENESS)
    paths = WorkerPaths(options.data_dir)
    store = SqliteStore(paths.store, settings.storage_limit, reader=True)
    spool = PcapSpool(paths.spool, settings.spool_limit, readonly=True)
    backend = LocalBackend(
        store, spool, stats_path=paths.stats, node=settings.node, feed_socket=feed_path
    )
    try:
        code = serve_api(backend, options.host, options.port, options.static_dir)
    finally:
        spool.close()
        store.close()
    sys.exit(code)


def serve_api(
    backend: Backend,
    host: str,
    port: int,
    static_dir: Path | None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Serve `create_app(backend)` with uvicorn until SIGINT/SIGTERM (`on_ready` is called
    once it listens); 0 on a clean stop, 1 when it could not start (port in use)."""
    import uvicorn

    from pilotfish.api.app import create_app

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None:
                on_ready()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # a stop signal is the normal end here: do not re-raise it after shutdown
            self._captured_signals.clear()

    app = create_app(backend, static_dir)
    # no permessage-deflate: compressing every live message was a quarter of the API's CPU
    # when fanning out to 20 clients; the stream's clients are mostly local
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws_per_message_deflate=False,
    )
    server = _Server(config)
    server.run()
    return 0 if server.started else 1
