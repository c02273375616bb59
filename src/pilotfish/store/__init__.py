"""Per-worker storage: the bounded entry store and the raw-packet spool.

`SqliteStore` (store/sqlite.py) keeps entries in one SQLite file in WAL mode, bounded by
bytes, oldest evicted first; `PcapSpool` (store/spool.py) keeps raw frames in bounded pcap
segments for per-flow PCAP export.  `base.py` is the contract both implement.
"""

from pilotfish.store.spool import PcapSpool
from pilotfish.store.sqlite import SqliteStore

__all__ = ["PcapSpool", "SqliteStore"]
