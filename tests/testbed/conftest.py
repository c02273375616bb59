"""Fixtures for the testbed tests: a fresh testbed per test, removed even when it fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from pilotfish.testbed.netns import Testbed

NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    tb = Testbed()
    try:
        yield tb
    finally:
        tb.close()
