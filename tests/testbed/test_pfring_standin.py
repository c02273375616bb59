"""The stand-in libpfring: it builds, exports what the binding calls, and can be told to fail."""

from __future__ import annotations

import ctypes
import errno
import shutil
from pathlib import Path

import pytest

from pilotfish.testbed.pfring_standin import build_standin

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

CALLED = (
    "pfring_open",
    "pfring_set_application_name",
    "pfring_set_bpf_filter",
    "pfring_enable_ring",
    "pfring_recv",
    "pfring_stats",
    "pfring_close",
)


def test_builds_a_library_with_every_function_the_binding_calls(tmp_path: Path) -> None:
    lib = ctypes.CDLL(str(build_standin(tmp_path)))
    assert all(hasattr(lib, name) for name in CALLED)


def test_a_define_makes_open_fail_with_that_errno(tmp_path: Path) -> None:
    path = build_standin(tmp_path, f"-DSHIM_FAIL_ERRNO={errno.EPERM}", name="libfail.so")
    lib = ctypes.CDLL(str(path), use_errno=True)
    lib.pfring_open.restype = ctypes.c_void_p
    lib.pfring_open.argtypes = (ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32)
    assert lib.pfring_open(b"lo", 1500, 0) is None
    assert ctypes.get_errno() == errno.EPERM


def test_only_defines_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="-D"):
        build_standin(tmp_path, "-o/tmp/elsewhere.so")
