"""LocalBackend: the store's answers, metrics merged from the capture side's stats file."""

from pathlib import Path

from pilotfish.api.backend import LocalBackend
from pilotfish.api.live import LiveFeed
from pilotfish.store.sqlite import SqliteStore
from pilotfish.worker import write_stats
from tests.store.entries import make


def test_backend_reads_store_and_merges_metrics(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "e.db")
    store.add([make(1), make(2)])
    store.commit()
    write_stats(tmp_path / "s.json", {"capture": {"received": 3}})
    b = LocalBackend(store, LiveFeed(), stats_path=tmp_path / "s.json")
    assert [e.id for e in b.entries(None, 10, None, None).entries] == ["n-2", "n-1"]
    assert b.entry("n-1") is not None and b.entry("zz") is None
    m = b.metrics()
    assert m["capture"]["received"] == 3 and m["store"]["bytes"] > 0
    assert m["websocket"] == {"clients": 0, "dropped": 0, "overflow": 0}
    assert b.export_pcap(None) == b"" and b.ready()
    store.close()
