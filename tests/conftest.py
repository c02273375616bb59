"""Shared test settings: hypothesis profiles (CI gets more examples, no deadline), and a guard
against testing a stale build of the compiled hot path (see setup.py)."""

import os
import runpy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

_compiled = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "compiled.py"))
if _compiled["stale"]():
    pytest.exit(
        "the compiled modules were built from older source: run `make install` first", returncode=4
    )
