"""A worker node for the two-node tests while `pilotfish worker` is not available here.

    python -m tests.integration.standin_worker -i IFACE [--capture B] [--bpf EXPR]
        [--host 127.0.0.1] [--port 8899] [--data-dir DIR] [--node NAME]

Same flags and the same announcement line as `pilotfish worker`: `CaptureWorker` captures
into the store in a thread and publishes to the live feed, and uvicorn serves
`create_app(LocalBackend(...))` over the same store (read-only connection) in this process.
Unlike the real worker, capture and API share one process, and there is no PCAP spool
behind the API (exports are empty captures).  SIGTERM/SIGINT stop both.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import uvicorn

from pilotfish.api.app import create_app
from pilotfish.api.backend import LocalBackend
from pilotfish.api.live import LiveFeed
from pilotfish.capture.base import CaptureOptions
from pilotfish.config import Settings
from pilotfish.store.sqlite import SqliteStore
from pilotfish.worker import CaptureWorker, WorkerPaths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standin_worker")
    parser.add_argument("-i", "--interface", required=True)
    parser.add_argument("--capture", default="best")
    parser.add_argument("--bpf", default="")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--data-dir", type=Path, default=Path("pilotfish-data"))
    parser.add_argument("--node", default="local")
    args = parser.parse_args(argv)

    paths = WorkerPaths(args.data_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    feed = LiveFeed()
    options = CaptureOptions(interfaces=args.interface.split(","), bpf=args.bpf)
    capture = CaptureWorker(Settings(node=args.node), options, paths, args.capture, feed.publish)
    failed: list[BaseException] = []

    def run_capture() -> None:
        try:
            capture.run()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run_capture, name="capture", daemon=True)
    thread.start()
    store = SqliteStore(paths.store, reader=True)
    backend = LocalBackend(store, None, feed, stats_path=paths.stats, node=args.node)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(backend, None), host=args.host, port=args.port, log_level="warning"
        )
    )

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            print(
                f"pilotfish worker: serving http://{args.host}:{args.port} "
                f"(node {args.node}, capture {args.capture})",
                file=sys.stderr,
                flush=True,
            )

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run()
    finally:
        capture.stop()
        thread.join(10)
        store.close()
    if failed:
        print(f"standin_worker: capture failed: {failed[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
