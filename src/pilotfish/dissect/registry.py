"""Choosing a dissector per flow: port hints first, content decides.

Every protocol is one `Registration` line in `BUILTIN`: its name, the transport it runs on,
the ports that hint at it, a sniff function and a factory.  `Registry.dissector_for` returns
a `Sniffer` that buffers the first bytes of the flow, asks the sniff functions (hinted ones
first) and then replays everything it held to the chosen dissector and delegates the rest.

A sniff function gets the first bytes of each direction (at most `SNIFF_BYTES`) and whether
the port hinted at it, and answers YES, NO or MAYBE (need more bytes).  The first YES wins;
when every candidate says NO, or the decision is forced, the flow goes to the fallback.  The
decision is forced by a gap, by `close()`, by a UDP datagram (it is complete by itself), when
both directions have `SNIFF_BYTES`, or when more than `HOLD_BYTES` are held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from pilotfish.config import DissectLimits
from pilotfish.dissect import dnssniff, httpstart
from pilotfish.dissect.base import Dissector
from pilotfish.dissect.dns import DnsDissector
from pilotfish.dissect.fallback import FallbackDissector
from pilotfish.dissect.http1 import Http1Dissector
from pilotfish.dissect.httpstart import MAYBE, YES
from pilotfish.model import IPPROTO_TCP, IPPROTO_UDP, Exchange

SNIFF_BYTES: Final = 64
HOLD_BYTES: Final = 64 * 1024

Sniff = Callable[[bytes, bytes, bool], int]
"""(first client bytes, first server bytes, port hinted) -> YES / NO / MAYBE."""


class Registration(NamedTuple):
    name: str
    ip_proto: int
    ports: frozenset[int]
    sniff: Sniff
    factory: Callable[[DissectLimits], Dissector]


def _http_sniff(client: bytes, server: bytes, hinted: bool) -> int:
    return httpstart.sniff(client, server)


def _dns_tcp(limits: DissectLimits) -> Dissector:
    return DnsDissector(limits, tcp=True)


_HTTP_PORTS: Final = frozenset((80, 81, 3000, 5000, 8000, 8008, 8080, 8081, 8088, 8888, 9000))
_DNS_PORTS: Final = frozenset((53, 5353, 5355))

BUILTIN: Final = (
    Registration("http", IPPROTO_TCP, _HTTP_PORTS, _http_sniff, Http1Dissector),
    Registration("dns", IPPROTO_UDP, _DNS_PORTS, dnssniff.sniff_udp, DnsDissector),
    Registration("dns", IPPROTO_TCP, _DNS_PORTS, dnssniff.sniff_tcp, _dns_tcp),
)


class Registry:
    """The dissectors pilotfish knows, and the choice among them for a new flow."""

    def __init__(
        self, limits: DissectLimits, registrations: tuple[Registration, ...] = BUILTIN
    ) -> None:
        self._limits = limits
        self._registrations = registrations
        self._by_proto: dict[int, tuple[Registration, ...]] = {}
        for reg in registrations:
            self._by_proto[reg.ip_proto] = (*self._by_proto.get(reg.ip_proto, ()), reg)

    def dissector_for(self, ip_proto: int, client_port: int, server_port: int) -> Dissector:
        candidates = self._by_proto.get(ip_proto)
        if not candidates:
            return self.fallback(ip_proto)
        hinted = [r for r in candidates if server_port in r.ports or client_port in r.ports]
        ordered = [(r, True) for r in hinted] + [(r, False) for r in candidates if r not in hinted]
        return Sniffer(self._limits, ip_proto, ordered, self.fallback(ip_proto))

    def by_name(self, name: str) -> Dissector | None:
        for reg in self._registrations:
            if reg.name == name:
                return reg.factory(self._limits)
        return None

    def fallback(self, ip_proto: int) -> Dissector:
        return FallbackDissector(self._limits, "udp" if ip_proto == IPPROTO_UDP else "tcp")

    def names(self) -> list[str]:
        return sorted({reg.name for reg in self._registrations} | {"tcp", "udp"})


class Sniffer:
    """Holds a new flow's first bytes until one registration claims them."""

    __slots__ = (
        "_candidates",
        "_chosen",
        "_fallback",
        "_held",
        "_held_bytes",
        "_limits",
        "_prefix",
        "_stopped",
        "_udp",
        "protocol",
    )

    def __init__(
        self,
        limits: DissectLimits,
        ip_proto: int,
        candidates: list[tuple[Registration, bool]],
        fallback: Dissector,
    ) -> None:
        self._limits = limits
        self._udp = ip_proto == IPPROTO_UDP
        self._candidates = candidates
        self._fallback = fallback
        self.protocol = fallback.protocol
        self._chosen: Dissector | None = None
        # events held until the choice: (direction, data or None for a gap, gap size, ts)
        self._held: list[tuple[int, bytes | None, int, float]] = []
        self._held_bytes = 0
        self._prefix = [b"", b""]  # first SNIFF_BYTES per direction, up to its first gap
        self._stopped = [False, False]  # a gap ended the direction's prefix

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        if self._chosen is not None:
            return self._chosen.feed(direction, data, ts)
        self._held.append((direction, data, 0, ts))
        self._held_bytes += len(data)
        prefix = self._prefix[direction]
        if not self._stopped[direction] and len(prefix) < SNIFF_BYTES:
            self._prefix[direction] = prefix + data[: SNIFF_BYTES - len(prefix)]
        return self._decide(force=self._udp)

    def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
        if self._chosen is not None:
            return self._chosen.gap(direction, size, ts)
        self._held.append((direction, None, size, ts))
        self._stopped[direction] = True
        return self._decide(force=True)

    def close(self, ts: float) -> list[Exchange]:
        out = self._decide(force=True) if self._chosen is None else []
        return out + self._current().close(ts)

    def pending_since(self) -> float | None:
        if self._chosen is not None:
            return self._chosen.pending_since()
        return self._held[0][3] if self._held else None

    @property
    def chosen(self) -> Dissector | None:
        """The dissector the flow was given, once decided; the owner may then call it
        directly (every call here only forwards to it from then on)."""
        return self._chosen

    def _current(self) -> Dissector:
        return self._chosen if self._chosen is not None else self._fallback

    def _decide(self, force: bool) -> list[Exchange]:
        client, server = self._prefix
        if self._held_bytes > HOLD_BYTES or (
            len(client) >= SNIFF_BYTES and len(server) >= SNIFF_BYTES
        ):
            force = True
        chosen: Dissector | None = None
        undecided = False
        for reg, hinted in self._candidates:
            verdict = reg.sniff(client, server, hinted)
            if verdict == YES:
                chosen = reg.factory(self._limits)
                break
            undecided = undecided or verdict == MAYBE
        if chosen is None:
            if undecided and not force:
                return []
            chosen = self._fallback
        return self._replay(chosen)

    def _replay(self, chosen: Dissector) -> list[Exchange]:
        self._chosen = chosen
        self.protocol = chosen.protocol
        held, self._held = self._held, []
        self._prefix = [b"", b""]
        out: list[Exchange] = []
        for direction, data, size, ts in held:
            if data is None:
                out += chosen.gap(direction, size, ts)
            else:
                out += chosen.feed(direction, data, ts)
        return out
