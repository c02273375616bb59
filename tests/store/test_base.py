"""The store contract: the SQLite store and the spool implement it; records round-trip."""

import inspect

import msgspec

from pilotfish.store.base import EntryStore, PacketSpool, Page, StreamRef
from pilotfish.store.spool import PcapSpool
from pilotfish.store.sqlite import SqliteStore


def test_implementations_have_every_contract_method() -> None:
    for proto, impl in ((EntryStore, SqliteStore), (PacketSpool, PcapSpool)):
        for name, _ in inspect.getmembers(proto, inspect.isfunction):
            if not name.startswith("_"):
                assert callable(getattr(impl, name, None)), (impl, name)


def test_records_round_trip_as_json() -> None:
    ref = StreamRef("n-f1", "10.0.0.1", 40000, "10.0.0.2", 80, "tcp", 1.0, 2.0)
    assert msgspec.json.decode(msgspec.json.encode(ref), type=StreamRef) == ref
    page = Page(entries=[], older="5", newer="9")
    assert msgspec.json.decode(msgspec.json.encode(page), type=Page) == page
