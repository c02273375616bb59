"""The backend registry: every backend by name, probing each with its reason."""

from __future__ import annotations

import os

import pytest

from pilotfish.capture.base import BEST_ORDER, CaptureOptions
from pilotfish.capture.registry import factories, probe


def test_every_backend_is_registered_best_first() -> None:
    assert tuple(factories()) == BEST_ORDER


@pytest.mark.skipif(os.geteuid() != 0, reason="opening sockets needs root")
def test_probe_on_loopback_names_each_reason() -> None:
    rows = {name: (ok, reason) for name, ok, reason in probe(CaptureOptions(interfaces=["lo"]))}
    assert rows["pfring"][0] is False and "libpfring not found" in rows["pfring"][1]
    assert rows["afxdp"] == (False, "lo: MTU 65536 too large for UMEM frame size 4096")
    assert rows["afpacket"][0] is True and "TPACKET_V3" in rows["afpacket"][1]


def test_probe_of_an_unknown_interface_declines_everywhere() -> None:
    rows = probe(CaptureOptions(interfaces=["nosuchif0"]))
    assert [ok for _, ok, _ in rows] == [False, False, False]
