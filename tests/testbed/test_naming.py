"""naming: the scheme every testbed object follows, and removal of a dead owner's leftovers."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.testbed import iproute, naming
from pilotfish.testbed.netns import Testbed
from tests.testbed.conftest import NEEDS_ROOT


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_new_prefixes_follow_the_default_pattern() -> None:
    prefixes = {naming.new_prefix() for _ in range(50)}
    assert all(re.fullmatch(naming.DEFAULT_PATTERN, p) for p in prefixes)
    assert len(prefixes) > 1


def test_names_carry_prefix_and_fit_ifnamsiz() -> None:
    prefix = "pfabcdefghi"  # the longest accepted prefix
    assert naming.check_prefix(prefix) == prefix
    assert naming.bridge_name(prefix) == "pfabcdefghibr"
    assert len(naming.host_veth(prefix, 254)) <= 15
    assert len(naming.pod_veth(prefix, 254)) <= 15


@pytest.mark.parametrize("bad", ["", "p", "PF12", "1abc", "pf-12", "pfabcdefghij", "pf 1"])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="15 characters"):
        naming.check_prefix(bad)


def test_netns_name_sanitises_pod_names() -> None:
    assert naming.netns_name("pf1234", 42, 3, "Cart API/v2") == "pf1234-42-3-cart-api-v2"


@given(st.text(max_size=80), st.integers(1, 2**22), st.integers(1, 254))
def test_netns_names_always_parse_back(pod: str, owner: int, index: int) -> None:
    name = naming.netns_name("pf00ff", owner, index, pod)
    m = re.fullmatch(rf"({naming.DEFAULT_PATTERN})-(\d+)-(\d+)(?:-[a-z0-9-]*)?", name)
    assert m is not None
    assert (m.group(1), int(m.group(2)), int(m.group(3))) == ("pf00ff", owner, index)


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = naming.write_state("pf0001", tmp_path)
    data = json.loads(path.read_text())
    assert naming.owner_alive(data["pid"], data["start"])
    naming.remove_state("pf0001", tmp_path)
    naming.remove_state("pf0001", tmp_path)  # twice is fine
    assert not path.exists()


def test_recycled_pid_is_not_the_owner() -> None:
    import os

    assert not naming.owner_alive(os.getpid(), started=-1)
    assert not naming.owner_alive(_dead_pid(), None)


@NEEDS_ROOT
@pytest.mark.integration
def test_cleanup_stale_removes_a_leaked_namespace_and_link(tmp_path: Path) -> None:
    prefix = naming.new_prefix()
    ns = naming.netns_name(prefix, _dead_pid(), 1, "leak")
    link = naming.bridge_name(prefix)
    iproute.ip("netns", "add", ns)
    iproute.ip("link", "add", link, "type", "bridge")
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
    try:
        assert ns in iproute.netns_names()
        cleaned = naming.cleanup_stale(re.escape(prefix), tmp_path)
        assert cleaned == [prefix]
        assert ns not in iproute.netns_names()
        assert link not in iproute.link_names()
        assert sleeper.wait(timeout=5) < 0  # the process left inside was killed
    finally:
        sleeper.kill()
        iproute.delete_netns(ns)
        iproute.delete_link(link)


@NEEDS_ROOT
@pytest.mark.integration
def test_cleanup_stale_leaves_a_live_testbed_alone(tmp_path: Path) -> None:
    with Testbed(state_dir=tmp_path) as tb:
        pod = tb.add_pod("alive")
        assert naming.cleanup_stale(re.escape(tb.prefix), tmp_path) == []
        assert pod.netns in iproute.netns_names()
        assert tb.bridge in iproute.link_names()


@NEEDS_ROOT
@pytest.mark.integration
def test_cleanup_stale_uses_the_state_file_owner(tmp_path: Path) -> None:
    prefix = naming.new_prefix()
    (tmp_path / f"{prefix}.json").write_text(json.dumps({"pid": _dead_pid(), "start": None}))
    link = naming.bridge_name(prefix)
    iproute.ip("link", "add", link, "type", "bridge")
    try:
        assert naming.cleanup_stale(re.escape(prefix), tmp_path) == [prefix]
        assert link not in iproute.link_names()
        assert not (tmp_path / f"{prefix}.json").exists()
    finally:
        iproute.delete_link(link)
