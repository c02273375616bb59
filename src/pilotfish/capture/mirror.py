"""Passive traffic mirroring for AF_XDP: tc clsact + u32 + `mirred egress mirror` into a veth pair.

An XSK fed by XDP takes packets away from the kernel stack, so pilotfish never attaches XDP
to a watched interface.  For a watched interface IF (ifindex N) it builds instead:

    IF --clsact ingress/egress, u32 match-all, mirred mirror--> pfxNa ==veth==> pfxNb (XDP + XSK)

The veth pair is named from IF's ifindex (`pfx<N>a`/`pfx<N>b`, at most 15 characters), has
IF's MTU (so mirrored frames fit), no addresses, IPv6/ARP/multicast off (so the mirror emits
no packets of its own), and one queue.  `gso_max_segs 1` on the tc end makes the kernel cut
TSO/GSO/GRO super-frames (up to 64 KB on a veth) into wire-size frames on their way into the
mirror, so they fit a UMEM frame: the XSK sees what the wire carries, where tcpdump on IF
would see the super-frames.  Both tc filters sit at the fixed pilotfish preference
`MIRROR_PREF`; they match every frame (u32), or only the frames a classic BPF program
accepts (cls_bpf `bytecode`, which sees ingress frames from their MAC header too, so a
libpcap Ethernet program applies as is) when one is given; the clsact qdisc is added only
when absent and removed on teardown only when pilotfish added it.  That fact is also written to a small state file (`<state_dir>/mirror-N`)
so that a later run can finish the cleanup of a run that was killed.

`Mirror.install()` first removes stale state of a killed run (the pfxN veth pair, filters at
`MIRROR_PREF`), logging each item, then builds the mirror; on any failure it rolls back.
`Mirror.remove()` is idempotent.  Limits: one pilotfish mirror per interface per network
namespace (a second run takes the first one's place); `tc` and `ip` (iproute2) must be on
PATH; every command has a timeout (`COMMAND_TIMEOUT`).  Frames the mirror drops (veth
tx/rx drops) are reported by `dropped()`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

MIRROR_PREF: Final = 49000
MIRROR_PREFIX: Final = "pfx"
STATE_DIR: Final = "/run/pilotfish"
COMMAND_TIMEOUT: Final = 10.0  # seconds per ip/tc command
IFNAMSIZ: Final = 16  # including the terminating NUL
DIRECTIONS: Final = ("ingress", "egress")

_SIOCGIFMTU: Final = 0x8921
_IFREQ_MTU = struct.Struct("16si12x")


class MirrorError(Exception):
    """Setting up or inspecting the mirror failed; the message carries the command's error."""


def mirror_names(ifindex: int) -> tuple[str, str]:
    """The veth pair mirroring the interface with this ifindex: (tc target end, XSK end)."""
    if ifindex <= 0:
        raise ValueError(f"bad ifindex {ifindex}")
    a, b = f"{MIRROR_PREFIX}{ifindex}a", f"{MIRROR_PREFIX}{ifindex}b"
    if len(b) >= IFNAMSIZ:
        raise ValueError(f"ifindex {ifindex} too large for an interface name")
    return a, b


def is_mirror_name(ifname: str) -> bool:
    """True for names pilotfish gives its own mirror links (never watch those)."""
    rest = ifname.removeprefix(MIRROR_PREFIX)
    return rest != ifname and len(rest) >= 2 and rest[:-1].isdigit() and rest[-1] in "ab"


def parse_qdisc_kinds(text: str) -> set[str]:
    """Kinds of the qdiscs in `tc -j qdisc show` output; malformed output gives an empty set."""
    return {str(item["kind"]) for item in _json_list(text) if "kind" in item}


def parse_filter_prefs(text: str) -> set[int]:
    """Preferences of the filters in `tc -j filter show` output; malformed gives an empty set."""
    prefs: set[int] = set()
    for item in _json_list(text):
        pref = item.get("pref")
        if isinstance(pref, int) and not isinstance(pref, bool):
            prefs.add(pref)
    return prefs


def interface_mtu(ifname: str) -> int:
    """The MTU of an interface in this network namespace (SIOCGIFMTU)."""
    req = _IFREQ_MTU.pack(ifname.encode()[: IFNAMSIZ - 1], 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        res = fcntl.ioctl(sock.fileno(), _SIOCGIFMTU, req)
    mtu: int = _IFREQ_MTU.unpack(res)[1]
    return mtu


def link_exists(ifname: str) -> bool:
    """Whether a link of this name exists in this network namespace."""
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True


class Mirror:
    """The mirror of one watched interface: install, report drops, remove."""

    def __init__(
        self,
        ifname: str,
        *,
        pref: int = MIRROR_PREF,
        state_dir: str | os.PathLike[str] = STATE_DIR,
        bytecode: str = "",
    ) -> None:
        self.ifname = ifname
        self.bytecode = bytecode
        self.ifindex = socket.if_nametoindex(ifname)  # OSError: unknown interface
        self.veth_a, self.veth_b = mirror_names(self.ifindex)
        self.pref = pref
        self.state_file = Path(state_dir) / f"mirror-{self.ifindex}"
        self.created_clsact = False
        self.stale: list[str] = []
        self.installed = False

    # --- lifecycle -------------------------------------------------------------------------

    def install(self) -> None:
        """Replace stale state, create the veth pair and the two mirror filters."""
        self.stale = self._clear_stale()
        try:
            mtu = max(interface_mtu(self.ifname), 68)
            self._create_veth(mtu)
            if "clsact" not in self.qdisc_kinds():
                _run(["tc", "qdisc", "add", "dev", self.ifname, "clsact"])
                self.created_clsact = True
            self._write_state()
            for direction in DIRECTIONS:
                _run(self._filter_cmd("add", direction) + self._mirror_action())
        except (MirrorError, OSError):
            self.remove()
            raise
        self.installed = True

    def remove(self) -> None:
        """Remove both filters, the clsact qdisc if ours, the veth pair and the state file."""
        owned_clsact = self.created_clsact or self._read_state()
        if link_exists(self.ifname):
            prefs = {d: self.filter_prefs(d) for d in DIRECTIONS}
            for direction in DIRECTIONS:
                if self.pref in prefs[direction]:
                    _run(self._filter_cmd("del", direction), check=False)
            if owned_clsact and "clsact" in self.qdisc_kinds():
                _run(["tc", "qdisc", "del", "dev", self.ifname, "clsact"], check=False)
        if link_exists(self.veth_a):
            _run(["ip", "link", "del", "dev", self.veth_a], check=False)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        self.created_clsact = False
        self.installed = False

    # --- inspection ------------------------------------------------------------------------

    def qdisc_kinds(self) -> set[str]:
        return parse_qdisc_kinds(_run(["tc", "-j", "qdisc", "show", "dev", self.ifname]))

    def filter_prefs(self, direction: str) -> set[int]:
        out = _run(["tc", "-j", "filter", "show", "dev", self.ifname, direction], check=False)
        return parse_filter_prefs(out)

    def dropped(self) -> int:
        """Frames lost inside the mirror: tx drops of the tc end + rx drops of the XSK end."""
        return _link_counter(self.veth_a, "tx_dropped") + _link_counter(self.veth_b, "rx_dropped")

    # --- helpers ---------------------------------------------------------------------------

    def _clear_stale(self) -> list[str]:
        found: list[str] = []
        owned_clsact = self._read_state()
        if link_exists(self.veth_a) or link_exists(self.veth_b):
            found.append(f"veth pair {self.veth_a}/{self.veth_b}")
        for direction in DIRECTIONS:
            if self.pref in self.filter_prefs(direction):
                found.append(f"tc {direction} filter pref {self.pref} on {self.ifname}")
        if not found and not owned_clsact:
            return found
        log.warning("afxdp mirror: replacing state of an earlier run: %s", "; ".join(found))
        self.created_clsact = owned_clsact
        for direction in DIRECTIONS:
            if self.pref in self.filter_prefs(direction):
                _run(self._filter_cmd("del", direction))
        for name in (self.veth_a, self.veth_b):
            if link_exists(name):
                _run(["ip", "link", "del", "dev", name], check=False)
        return found

    def _create_veth(self, mtu: int) -> None:
        a, b = self.veth_a, self.veth_b
        one_queue = ("numtxqueues", "1", "numrxqueues", "1")
        # gso_max_segs 1: super-frames (TSO/GSO/GRO) are cut to wire size on their way in
        end_a = (a, "mtu", str(mtu), "gso_max_segs", "1", *one_queue)
        end_b = (b, "mtu", str(mtu), *one_queue)
        _run(["ip", "link", "add", *end_a, "type", "veth", "peer", "name", *end_b])
        for name in (a, b):
            _disable_ipv6(name)
            _run(["ip", "link", "set", "dev", name, "addrgenmode", "none", "arp", "off"])
            _run(["ip", "link", "set", "dev", name, "multicast", "off", "up"])

    def _filter_cmd(self, verb: str, direction: str) -> list[str]:
        return ["tc", "filter", verb, "dev", self.ifname, direction, "pref", str(self.pref)]

    def _mirror_action(self) -> list[str]:
        match: tuple[str, ...] = ("protocol", "all", "u32", "match", "u32", "0", "0")
        if self.bytecode:  # cls_bpf runs classic BPF on the frame from its MAC header
            match = ("protocol", "all", "bpf", "bytecode", self.bytecode)
        return [*match, "action", "mirred", "egress", "mirror", "dev", self.veth_a]

    def _write_state(self) -> None:
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text("clsact\n" if self.created_clsact else "\n")
        except OSError as exc:  # cleanup after a crash gets less exact, capture still works
            log.warning("afxdp mirror: cannot write %s: %s", self.state_file, exc)

    def _read_state(self) -> bool:
        try:
            return self.state_file.read_text().strip() == "clsact"
        except (OSError, UnicodeDecodeError):
            return False


def _run(cmd: Sequence[str], *, check: bool = True) -> str:
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MirrorError(f"{' '.join(cmd)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise MirrorError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _json_list(text: str) -> list[dict[str, object]]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict)]


def _disable_ipv6(ifname: str) -> None:
    path = Path("/proc/sys/net/ipv6/conf") / ifname / "disable_ipv6"
    try:
        path.write_text("1\n")
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # no IPv6 in this kernel: nothing to disable
            raise


def _link_counter(ifname: str, counter: str) -> int:
    try:
        return int(Path(f"/sys/class/net/{ifname}/statistics/{counter}").read_text())
    except (OSError, ValueError):
        return 0
