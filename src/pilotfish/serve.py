"""`--serve`: the API and dashboard on this machine for a capture file or a live capture.

- `serve_file` (`pilotfish read FILE --serve`): the file's frames go to a packet spool and
  its entries to a store, both in a temporary data directory; then the API serves them in
  this process until SIGINT/SIGTERM, and the directory is removed.  A file that yields
  nothing usable is an error (exit 2) rather than an empty dashboard; one damaged part-way
  is served with what was recovered, and the damage is reported.
- `serve_capture` (`pilotfish capture -i IF --serve`): `node.run_node` (capture and API
  processes) over a temporary data directory, removed at the end.

`dashboard_dir()` is the dashboard build served as static files: `web/dist` of a source
checkout when it exists, else the copy packaged in `pilotfish/api/static`, else none (the
API then answers `/` with a JSON index).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pilotfish
from pilotfish.api.app import STATIC_DIR
from pilotfish.capture.base import CaptureOptions
from pilotfish.config import Settings
from pilotfish.node import NodeOptions, run_node
from pilotfish.offline import read_file
from pilotfish.worker import WorkerPaths, write_stats

EXIT_USAGE = 2


def dashboard_dir(package_file: str = pilotfish.__file__) -> Path | None:
    """The dashboard's static files (see the module docstring)."""
    checkout = Path(package_file).resolve().parents[2] / "web" / "dist"
    for candidate in (checkout, STATIC_DIR):
        if (candidate / "index.html").is_file():
            return candidate
    return None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def serve_file(
    path: Path,
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8899,
    bpf: str = "",
    say: Callable[[str], None] = _stderr,
) -> int:
    """Load `path` into a temporary store and spool, then serve them; the exit code."""
    from pilotfish.api.backend import LocalBackend
    from pilotfish.node import serve_api
    from pilotfish.store.spool import PcapSpool
    from pilotfish.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory(prefix="pilotfish-read-") as tmp:
        paths = WorkerPaths(Path(tmp))
        store = SqliteStore(paths.store, settings.storage_limit)
        spool = PcapSpool(paths.spool, settings.spool_limit)
        try:
            result = read_file(path, settings, lambda e: store.add((e,)), bpf=bpf, tap=spool.write)
            store.commit()
            spool.flush()
            if result.error:
                say(f"pilotfish read: {result.error}")
                if not result.summary.get("frames"):
                    return EXIT_USAGE
            write_stats(paths.stats, _stats_of(result.summary, store, spool))
            backend = LocalBackend(store, spool, stats_path=paths.stats, node=settings.node)
            where = f"http://{host}:{port}"
            ready = f"pilotfish read: serving {where} ({result.emitted} entries from {path})"
            return serve_api(backend, host, port, dashboard_dir(), lambda: say(ready))
        finally:
            spool.close()
            store.close()


def _stats_of(summary: dict[str, Any], store: Any, spool: Any) -> dict[str, Any]:
    capture = summary.get("capture", {})
    return {
        "capture": {"backend": "pcap", **(capture if isinstance(capture, dict) else {})},
        "pipeline": summary,
        "store": {"bytes": store.size_bytes(), **store.counters()},
        "spool": {"bytes": spool.size_bytes(), **spool.counters()},
    }


def serve_capture(
    settings: Settings,
    capture: CaptureOptions,
    backend: str = "best",
    host: str = "127.0.0.1",
    port: int = 8899,
    say: Callable[[str], None] = _stderr,
) -> int:
    """Run a node (capture + API processes) over a temporary data directory."""
    with tempfile.TemporaryDirectory(prefix="pilotfish-capture-") as tmp:
        options = NodeOptions(
            capture=capture,
            data_dir=Path(tmp),
            backend=backend,
            host=host,
            port=port,
            static_dir=dashboard_dir(),
            banner="pilotfish capture",
        )
        return run_node(settings, options, say)
