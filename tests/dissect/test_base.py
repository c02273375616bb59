"""The dissector contract: every registered dissector implements it."""

import inspect

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError, Dissector
from pilotfish.dissect.registry import Registry
from pilotfish.model import IPPROTO_TCP, IPPROTO_UDP


def test_every_dissector_has_the_contract_methods() -> None:
    reg = Registry(DissectLimits())
    made = [
        reg.dissector_for(IPPROTO_TCP, 1, 80),
        reg.dissector_for(IPPROTO_UDP, 1, 53),
        reg.fallback(IPPROTO_TCP),
        reg.fallback(IPPROTO_UDP),
    ]
    made += [d for name in reg.names() if (d := reg.by_name(name)) is not None]
    for d in made:
        for name, _ in inspect.getmembers(Dissector, inspect.isfunction):
            if not name.startswith("_"):
                assert callable(getattr(d, name)), (d, name)
        assert isinstance(d.protocol, str)
    assert issubclass(DissectError, Exception)
