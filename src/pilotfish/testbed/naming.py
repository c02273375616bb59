"""The testbed naming scheme, owner state files, and removal of stale leftovers.

Every kernel object of one testbed carries its prefix (default "pf" + 4 random hex):

  bridge       PREFIX + "br"               e.g. pf3a9cbr      (<= 15 chars)
  host veth    PREFIX + "h" + index        e.g. pf3a9ch12
  pod veth     PREFIX + "c" + index        (renamed to eth0 once inside its namespace)
  namespace    PREFIX-OWNERPID-INDEX-NAME  e.g. pf3a9c-4242-2-cart-api

A state file /run/pilotfish-testbed/PREFIX.json records the owner PID and its start time
(so a recycled PID is not mistaken for the owner).  `cleanup_stale` removes namespaces,
links and in-namespace processes of testbeds whose owner is dead; a testbed whose owner is
alive is never touched.  Objects matching the pattern with no known owner are orphans and
are removed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pilotfish.testbed import iproute
from pilotfish.testbed.procs import kill_pids, pid_alive, start_time

STATE_DIR: Final = Path("/run/pilotfish-testbed")
DEFAULT_PATTERN: Final = r"pf[0-9a-f]{4}"
MAX_PREFIX: Final = 11  # leaves room for "h" + 3 digits within IFNAMSIZ-1 = 15
_PREFIX_RE: Final = re.compile(r"[a-z][a-z0-9]{1,10}")
_SAFE_RE: Final = re.compile(r"[^a-z0-9-]+")


def new_prefix() -> str:
    """A fresh random prefix: "pf" and 4 hex digits."""
    return "pf" + secrets.token_hex(2)


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"testbed prefix {prefix!r}: want a lowercase letter then 1-10 [a-z0-9] "
            "(interface names must stay within 15 characters)"
        )
    return prefix


def bridge_name(prefix: str) -> str:
    return f"{prefix}br"


def host_veth(prefix: str, index: int) -> str:
    return f"{prefix}h{index}"


def pod_veth(prefix: str, index: int) -> str:
    return f"{prefix}c{index}"


def netns_name(prefix: str, owner: int, index: int, pod: str) -> str:
    safe = _SAFE_RE.sub("-", pod.lower()).strip("-")[:24]
    return f"{prefix}-{owner}-{index}-{safe}"


def state_path(prefix: str, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / f"{prefix}.json"


def write_state(prefix: str, state_dir: Path = STATE_DIR) -> Path:
    """Record this process as the owner of `prefix`; returns the state file path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    path = state_path(prefix, state_dir)
    path.write_text(json.dumps({"prefix": prefix, "pid": pid, "start": start_time(pid)}))
    return path


def remove_state(prefix: str, state_dir: Path = STATE_DIR) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(prefix, state_dir).unlink()


def owner_alive(pid: int, started: int | None) -> bool:
    """True if `pid` is alive and (when known) started at the recorded time."""
    if not pid_alive(pid):
        return False
    return started is None or start_time(pid) == started


@dataclass
class Leftovers:
    """What one stale testbed prefix still holds."""

    prefix: str
    owner: int | None = None
    started: int | None = None
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    has_state: bool = False


def find_leftovers(
    prefix_pattern: str = DEFAULT_PATTERN, state_dir: Path = STATE_DIR
) -> dict[str, Leftovers]:
    """Group every namespace, link and state file matching the scheme by prefix."""
    ns_re = re.compile(rf"({prefix_pattern})-(\d+)-\d+(?:-.*)?")
    link_re = re.compile(rf"({prefix_pattern})(?:br|h\d+|c\d+)")
    found: dict[str, Leftovers] = {}
    for name in iproute.netns_names():
        m = ns_re.fullmatch(name)
        if m:
            entry = found.setdefault(m.group(1), Leftovers(m.group(1)))
            entry.namespaces.append(name)
            entry.owner = int(m.group(2))
    for name in iproute.link_names():
        m = link_re.fullmatch(name)
        if m:
            found.setdefault(m.group(1), Leftovers(m.group(1))).links.append(name)
    if state_dir.is_dir():
        for path in state_dir.glob("*.json"):
            if not re.fullmatch(prefix_pattern, path.stem):
                continue
            entry = found.setdefault(path.stem, Leftovers(path.stem))
            entry.has_state = True
            try:
                data = json.loads(path.read_text())
                entry.owner = int(data["pid"])
                entry.started = data.get("start")
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable state: judged by the namespace names alone
    return found


def remove(left: Leftovers, state_dir: Path = STATE_DIR) -> list[str]:
    """Delete everything a leftover group holds; returns the errors met (never raises)."""
    for ns in left.namespaces:
        kill_pids(iproute.netns_pids(ns))
    # Host veths first (each takes its namespaced peer along), the bridge last.
    links = left.links
    results = [iproute.delete_link(link) for link in links if not link.endswith("br")]
    results += [iproute.delete_netns(ns) for ns in left.namespaces]
    results += [iproute.delete_link(link) for link in links if link.endswith("br")]
    errors = [err for err in results if err]
    if not errors:
        remove_state(left.prefix, state_dir)
    return errors


def cleanup_stale(prefix_pattern: str = DEFAULT_PATTERN, state_dir: Path = STATE_DIR) -> list[str]:
    """Remove leftovers of testbeds whose owner died; returns the prefixes cleaned.

    `prefix_pattern` is a regular expression for the prefix part of the names.
    """
    cleaned = []
    for prefix, left in sorted(find_leftovers(prefix_pattern, state_dir).items()):
        if left.owner is not None and owner_alive(left.owner, left.started):
            continue
        remove(left, state_dir)
        cleaned.append(prefix)
    return cleaned
