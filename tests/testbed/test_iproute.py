"""iproute: checked command wrappers and the parsing of `ip`/`ethtool` listings."""

from __future__ import annotations

import pytest

from pilotfish.testbed import iproute
from pilotfish.testbed.iproute import TestbedError
from tests.testbed.conftest import NEEDS_ROOT


def test_run_returns_stdout() -> None:
    assert iproute.run(["echo", "hello"]) == "hello\n"


def test_failing_command_names_itself_and_its_stderr() -> None:
    with pytest.raises(TestbedError, match=r"sh -c .*exit 3: boom"):
        iproute.run(["sh", "-c", "echo boom >&2; exit 3"])


def test_unchecked_failure_returns_output() -> None:
    assert iproute.run(["sh", "-c", "echo partial; exit 1"], check=False) == "partial\n"


def test_missing_program_is_a_testbed_error() -> None:
    with pytest.raises(TestbedError, match="no-such-program-pf"):
        iproute.run(["no-such-program-pf"])


def test_timeout_is_a_testbed_error() -> None:
    with pytest.raises(TestbedError, match="timed out"):
        iproute.run(["sleep", "5"], timeout=0.2)


@NEEDS_ROOT
@pytest.mark.integration
def test_listings_see_loopback_and_tolerate_unknown_names() -> None:
    assert "lo" in iproute.link_names()
    assert iproute.netns_pids("pf-no-such-namespace") == []
    assert iproute.delete_link("pfzzzzbr") is None  # already gone is not an error
    assert iproute.delete_netns("pf-no-such-namespace") is None
    assert iproute.offload_state("lo")["tcp-segmentation-offload"] in (True, False)
