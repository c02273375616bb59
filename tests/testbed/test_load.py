"""load: bounded load from a client pod, refusing anything outside the testbed."""

from __future__ import annotations

import ipaddress

import pytest

from pilotfish.testbed.load import check_targets, run_load
from pilotfish.testbed.netns import Testbed
from pilotfish.testbed.services import start_api
from tests.testbed.conftest import NEEDS_ROOT

SUBNET = ipaddress.IPv4Network("10.213.0.0/24")


def test_targets_inside_the_subnet_pass() -> None:
    urls = ["http://10.213.0.2:8080/", "dns://10.213.0.9/x.pilotfish.test", "redis://10.213.0.3/"]
    assert check_targets(SUBNET, urls) == urls


@pytest.mark.parametrize(
    "url", ["http://192.0.2.1/", "http://127.0.0.1:8080/", "http://example.com/", "dns:///x"]
)
def test_targets_outside_the_subnet_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="testbed"):
        check_targets(SUBNET, [url])


@NEEDS_ROOT
@pytest.mark.integration
def test_run_load_is_bounded_by_count(testbed: Testbed) -> None:
    client = testbed.add_pod("client")
    api = start_api(testbed, testbed.add_pod("api"))
    result = run_load(testbed, client, [f"{api.url}/healthz", f"{api.url}/nope"], 50, 20.0)
    assert (result.sent, result.ok, result.errors) == (50, 50, 0)
    assert result.per_target[f"{api.url}/healthz"]["sent"] == 25
    assert testbed.procs.alive() == [api.proc.pid]  # the load process is gone


@NEEDS_ROOT
@pytest.mark.integration
def test_run_load_is_bounded_by_time(testbed: Testbed) -> None:
    client = testbed.add_pod("client")
    api = start_api(testbed, testbed.add_pod("api"))
    result = run_load(testbed, client, [f"{api.url}/slow?ms=100"], 1_000_000, 0.5)
    assert 1 <= result.sent < 20 and result.elapsed_s < 5


@NEEDS_ROOT
@pytest.mark.integration
def test_run_load_refuses_outside_targets(testbed: Testbed) -> None:
    client = testbed.add_pod("client")
    with pytest.raises(ValueError, match="outside"):
        run_load(testbed, client, ["http://192.0.2.1/"], 1, 1.0)
    assert testbed.procs.pids == []
