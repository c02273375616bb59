"""Thin, checked wrappers around the `ip` and `ethtool` commands the testbed needs.

Every call runs one short command with a timeout and raises `TestbedError` carrying the
command's stderr when it fails, so a half-built testbed says exactly which step broke.
Nothing here keeps state; listing functions parse `ip` output and skip lines they do not
understand.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Final

COMMAND_TIMEOUT_S: Final = 10.0
OFFLOAD_FEATURES: Final = ("tso", "gso", "gro", "tx", "rx")


class TestbedError(RuntimeError):
    """A testbed step failed; the message names the command and its error output."""

    __test__ = False  # not a pytest test class despite the name


def run(argv: Sequence[str], check: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run one command; return stdout. With check, a non-zero exit raises TestbedError."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise TestbedError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def ip(*args: str, check: bool = True) -> str:
    """`ip ARGS...` in the root namespace."""
    return run(["ip", *args], check=check)


def ip_in(netns: str, *args: str, check: bool = True) -> str:
    """`ip ARGS...` inside a named network namespace."""
    return run(["ip", "-n", netns, *args], check=check)


def netns_names() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def link_names() -> list[str]:
    """Names of all links in the root namespace (the peer suffix `@...` removed)."""
    names = []
    for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        names.append(parts[1].strip().split("@", 1)[0])
    return names


def delete_link(name: str) -> str | None:
    """Delete a root-namespace link; a link that is already gone is not an error.

    Returns the error text, or None on success.
    """
    try:
        run(["ip", "link", "delete", name])
    except TestbedError as exc:
        if name not in link_names():
            return None
        return str(exc)
    return None


def delete_netns(name: str) -> str | None:
    """Delete a named namespace; one already gone is not an error. Returns the error text."""
    try:
        run(["ip", "netns", "delete", name])
    except TestbedError as exc:
        if name not in netns_names():
            return None
        return str(exc)
    return None


def netns_pids(netns: str) -> list[int]:
    """PIDs of the processes living in a named namespace (empty if it is gone)."""
    out = run(["ip", "netns", "pids", netns], check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def set_offloads(dev: str, enabled: bool, netns: str | None = None) -> None:
    """Turn TSO/GSO/GRO and TX/RX checksum offload on or off for one device."""
    state = "on" if enabled else "off"
    argv = ["ethtool", "-K", dev]
    for feature in OFFLOAD_FEATURES:
        argv += [feature, state]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    run(argv)


def offload_state(dev: str, netns: str | None = None) -> dict[str, bool]:
    """The current offload switches of a device as `ethtool -k` reports them."""
    argv = ["ethtool", "-k", dev]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    state: dict[str, bool] = {}
    for line in run(argv).splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip():
            state[name.strip()] = value.split()[0] == "on"
    return state
