"""The AF_XDP helper's build script: the compiled module exposes the ring calls."""

import importlib

import pytest

from pilotfish.capture import _xsk_build


def test_builder_declares_the_batch_calls() -> None:
    assert _xsk_build.ffibuilder is not None


def test_built_module_exports_the_functions() -> None:
    try:
        mod = importlib.import_module("pilotfish.capture._xsk")
    except ImportError:
        pytest.skip("helper not built on this machine (libxdp-dev missing)")
    for name in ("pf_xsk_open", "pf_xsk_recv", "pf_xsk_stats", "pf_xsk_close"):
        assert hasattr(mod.lib, name)
