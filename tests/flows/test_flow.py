"""Flow: the per-flow record."""

from pilotfish.flows.flow import Flow
from pilotfish.model import IPPROTO_UDP


def test_flow_fields() -> None:
    f = Flow((b"\x0a\x00\x00\x01", 5, b"\x0a\x00\x00\x02", 53, IPPROTO_UDP), 7, 1.5, False)
    assert (f.ident, f.first_ts, f.last_ts, f.packets, f.bytes, f.state) == (
        7,
        1.5,
        1.5,
        0,
        [0, 0],
        None,
    )
    assert f.proto == IPPROTO_UDP and "Flow(7" in repr(f)
