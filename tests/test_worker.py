"""The worker's capture side: real traffic into the store, the spool and the stats file."""

from __future__ import annotations

import io
import os
import subprocess
import threading
from pathlib import Path

import pytest

from pilotfish.capture.base import CaptureOptions
from pilotfish.config import Settings
from pilotfish.model import Entry
from pilotfish.query import compile_query
from pilotfish.store.sqlite import SqliteStore
from pilotfish.testbed.load import run_load
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.services import start_nginx
from pilotfish.worker import CaptureWorker, WorkerPaths, last_seq, read_stats, write_stats


def test_stats_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    assert read_stats(path) == {}
    write_stats(path, {"a": 1})
    write_stats(path, {"a": 2, "b": [1]})
    assert read_stats(path) == {"a": 2, "b": [1]}
    path.write_text("{broken")
    assert read_stats(path) == {}
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_last_seq_continues_only_the_nodes_own_ids() -> None:
    assert last_seq(None, "n1") == 0
    assert last_seq("n1-41", "n1") == 41
    assert last_seq("n10-41", "n1") == 0  # another node's id
    assert last_seq("n1-x", "n1") == 0


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_worker_stores_publishes_and_spools_real_traffic(tmp_path: Path) -> None:
    published: list[Entry] = []
    with Testbed() as tb:
        client = tb.add_pod("client")
        web = tb.add_pod("web")
        nginx = start_nginx(tb, web)
        paths = WorkerPaths(tmp_path / "w")
        worker = CaptureWorker(
            Settings(node="n1"),
            CaptureOptions(interfaces=[client.veth]),
            paths,
            backend="afpacket",
            publish=published.append,
        )
        outcome: list[dict[str, object]] = []
        thread = threading.Thread(target=lambda: outcome.append(worker.run()))
        thread.start()
        try:
            while worker._source is None and thread.is_alive():
                thread.join(0.05)
            targets = [f"{nginx.url}/", f"{nginx.url}/missing", f"{nginx.url}/api/v1/items"]
            load = run_load(tb, client, targets, requests=30, duration_s=10)
            assert load.ok == 30
            thread.join(1.5)  # let the ring retire its last block and the clock pass a commit
        finally:
            worker.stop()
            thread.join(10)
    assert outcome, "worker did not finish"
    stats = outcome[0]
    assert stats["capture"]["backend"] == "afpacket"  # type: ignore[index]
    assert stats["capture"]["dropped"] == 0  # type: ignore[index]
    assert read_stats(paths.stats)["node"] == "n1"

    http = [e for e in published if e.protocol == "http"]
    assert len(http) == 30
    assert sorted({e.path for e in http}) == ["/", "/api/v1/items", "/missing"]
    reader = SqliteStore(paths.store, reader=True)
    try:
        page = reader.query(compile_query("http && status_code == 404"), limit=100)
        assert len(page.entries) == 10
        assert all(e.path == "/missing" for e in page.entries)
        streams = reader.streams(compile_query("http"))
    finally:
        reader.close()
    from pilotfish.store.spool import PcapSpool

    spool = PcapSpool(paths.spool)
    out = io.BytesIO()
    exported = spool.export(streams, out)
    spool.close()
    assert exported > 0
    pcap = tmp_path / "export.pcap"
    pcap.write_bytes(out.getvalue())
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(fields) == sorted(e.path for e in http)
