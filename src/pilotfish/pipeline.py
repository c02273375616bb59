"""Frames in, entries out: decode -> flows -> dissect -> entries, in request-timestamp order.

The same pipeline runs behind `pilotfish read` (a file), `pilotfish capture` (a live
source) and the worker.  It is single-threaded and sans-IO: the caller feeds batches of
frames and receives finished entries through `emit`, in timestamp order (see reorder.py).

Isolation: a dissector that raises `DissectError` gives up on its flow (counted per
protocol) and the rest of the flow becomes a plain `tcp`/`udp` entry; any other exception
from a dissector is a bug, counted as a crash and isolated the same way, so no input can take
the pipeline down.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from pilotfish.config import Settings
from pilotfish.decode.decoder import Decoder
from pilotfish.dissect.base import DissectError, Dissector
from pilotfish.dissect.registry import Registry, Sniffer
from pilotfish.flows.flow import Flow
from pilotfish.flows.table import FlowTable
from pilotfish.model import Endpoint, Entry, Exchange, Frame
from pilotfish.reorder import Reorderer

log = logging.getLogger(__name__)

_TICK_FRAMES = 4096  # expire flows and release ordered entries at least this often


class Resolver(Protocol):
    """Names an endpoint (pod, service, namespace, node) from its address."""

    def endpoint(self, ip: str, port: int) -> Endpoint: ...


class AddressOnly:
    """The resolver used when no inventory is known: the address alone."""

    def endpoint(self, ip: str, port: int) -> Endpoint:
        return Endpoint(ip=ip, port=port)


def address_text(addr: bytes) -> str:
    """Printable form of a raw IPv4 (4 bytes) or IPv6 (16 bytes) address."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


class _FlowState:
    """What the pipeline keeps per flow (in `Flow.state`)."""

    __slots__ = ("dissector", "dst", "failed", "sniffer", "src", "stream")

    def __init__(self, dissector: Dissector, src: Endpoint, dst: Endpoint, stream: str) -> None:
        self.dissector = dissector
        # while a Sniffer is still choosing; afterwards its choice is called directly
        self.sniffer = dissector if isinstance(dissector, Sniffer) else None
        self.src = src
        self.dst = dst
        self.stream = stream
        self.failed: list[str] = []  # protocols that gave up on this flow


class Pipeline:
    """Drives one capture's frames through every stage; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        emit: Callable[[Entry], None],
        capture: str = "pcap",
        resolver: Resolver | None = None,
        max_delay: float | None = None,
        first_seq: int = 0,
    ) -> None:
        self.settings = settings
        self.capture = capture
        self.node = settings.node
        self.decoder = Decoder(settings.decode)
        self.table = FlowTable(settings.flows, self)
        self.registry = Registry(settings.dissect)
        self.resolver: Resolver = resolver or AddressOnly()
        self.reorder = Reorderer(emit, settings.reorder_bytes)
        self.frames = 0
        self.bytes = 0
        self.entries: Counter[str] = Counter()
        self.pairs: Counter[str] = Counter()  # entries with both a request and a response
        self.dissect_errors: Counter[str] = Counter()
        self.dissector_crashes: Counter[str] = Counter()
        self._seq = first_seq  # ids continue after it ("<node>-<first_seq + 1>", ...)
        self._id_prefix = f"{self.node}-"
        self._now = float("-inf")
        self._until_tick = _TICK_FRAMES
        self._max_delay = max_delay  # live capture: never hold an entry longer than this

    # --- feeding ------------------------------------------------------------------------

    def feed(self, frames: list[Frame]) -> None:
        """Process one batch of frames (any size, in capture order)."""
        if not frames:
            return
        decode = self.decoder.decode
        packet = self.table.packet
        now = self._now
        nbytes = 0
        for ts, linktype, data, _wirelen in frames:
            nbytes += len(data)
            if ts > now:
                now = ts
            pkt = decode(ts, linktype, data)
            if pkt is not None:
                packet(ts, pkt)
        self._now = now
        self.frames += len(frames)
        self.bytes += nbytes
        self._until_tick -= len(frames)
        if self._until_tick <= 0:
            self.tick()

    def tick(self) -> None:
        """Expire idle state and release the entries that can no longer be preceded."""
        now = self._now
        self.table.expire(now)
        self.decoder.expire(now)
        self.reorder.release(self._watermark(now))
        # Scanning open flows costs O(flows): never do it more often than once per flow.
        self._until_tick = max(_TICK_FRAMES, self.table.stats.open)

    def advance(self, now: float) -> None:
        """Live capture: the clock moved to `now` (even without packets); tick when due."""
        if self._max_delay is None:
            return
        if now > self._now:
            self._now = now
        if self._until_tick <= 0 or len(self.reorder):
            self.tick()

    def finish(self) -> None:
        """End of input: close every flow and emit everything that is left."""
        self.table.close_all(self._now if self._now != float("-inf") else 0.0)
        self.reorder.flush()

    def _watermark(self, now: float) -> float:
        low = now
        floor = now - self._max_delay if self._max_delay is not None else float("-inf")
        for flow in self.table.open_flows():
            state: _FlowState | None = flow.state
            if state is not None:
                pending = state.dissector.pending_since()
                if pending is not None and pending < low:
                    low = pending
        return max(low, floor)

    # --- FlowSink -----------------------------------------------------------------------

    def on_data(self, flow: Flow, direction: int, data: bytes, ts: float) -> None:
        state: _FlowState | None = flow.state
        if state is None:
            state = self._open(flow)
        try:
            exchanges = state.dissector.feed(direction, data, ts)
        except Exception as exc:  # isolation boundary, see module docstring
            self._give_up(flow, state, exc)
            return
        if state.sniffer is not None:
            self._sniffed(state)
        if exchanges:
            self._exchanges(flow, state, exchanges)

    def on_gap(self, flow: Flow, direction: int, size: int, ts: float) -> None:
        state: _FlowState | None = flow.state
        if state is None:
            state = self._open(flow)
        try:
            exchanges = state.dissector.gap(direction, size, ts)
        except Exception as exc:
            self._give_up(flow, state, exc)
            exchanges = state.dissector.gap(direction, size, ts)
        if exchanges:
            self._exchanges(flow, state, exchanges)

    def on_close(self, flow: Flow, ts: float, reason: str) -> None:
        state: _FlowState | None = flow.state
        if state is None:
            return  # no payload ever: nothing to report
        try:
            exchanges = state.dissector.close(ts)
        except Exception as exc:
            self._give_up(flow, state, exc)
            exchanges = state.dissector.close(ts)
        if exchanges:
            self._exchanges(flow, state, exchanges)
        flow.state = None

    # --- internals ------------------------------------------------------------------------

    def _open(self, flow: Flow) -> _FlowState:
        caddr, cport, saddr, sport, proto = flow.key
        state = _FlowState(
            self.registry.dissector_for(proto, cport, sport),
            self.resolver.endpoint(address_text(caddr), cport),
            self.resolver.endpoint(address_text(saddr), sport),
            f"{self.node}-f{flow.ident}",
        )
        flow.state = state
        return state

    @staticmethod
    def _sniffed(state: _FlowState) -> None:
        """Once the sniffer has chosen, talk to its choice without the forwarding hop."""
        sniffer = state.sniffer
        if sniffer is None:
            return
        if state.dissector is not sniffer:  # replaced meanwhile (gave up, upgraded)
            state.sniffer = None
        elif sniffer.chosen is not None:
            state.dissector = sniffer.chosen
            state.sniffer = None

    def _give_up(self, flow: Flow, state: _FlowState, exc: Exception) -> None:
        proto = state.dissector.protocol
        if isinstance(exc, DissectError):
            self.dissect_errors[proto] += 1
            log.debug("flow %s: %s gave up: %s", state.stream, proto, exc)
        else:
            self.dissector_crashes[proto] += 1
            log.warning("flow %s: %s dissector failed: %r", state.stream, proto, exc)
        state.failed.append(proto)
        state.dissector = self.registry.fallback(flow.proto)

    def _exchanges(self, flow: Flow, state: _FlowState, exchanges: list[Exchange]) -> None:
        for ex in exchanges:
            self.reorder.add(self._entry(state, ex, flow.first_ts))
            if ex.upgrade:
                handed = self.registry.by_name(ex.upgrade)
                state.dissector = (
                    handed if handed is not None else self.registry.fallback(flow.proto)
                )

    def _entry(self, state: _FlowState, ex: Exchange, flow_ts: float) -> Entry:
        self._seq = seq = self._seq + 1
        req_ts = ex.request_ts
        resp_ts = ex.response_ts
        elapsed = None
        if req_ts is None:
            start = resp_ts if resp_ts is not None else flow_ts
        else:
            start = req_ts
            if resp_ts is not None:
                self.pairs[ex.protocol] += 1
                elapsed = round((resp_ts - req_ts) * 1_000_000)
                if elapsed < 0:
                    elapsed = 0
        flags = ex.flags
        if state.failed:
            flags = [*flags, *(f"{p}-unparsed" for p in state.failed)]
        protocol = ex.protocol
        self.entries[protocol] += 1
        return Entry(  # positional, in model.Entry's field order (cheaper than keywords)
            f"{self._id_prefix}{seq}",
            protocol,
            start,
            elapsed,
            state.src,
            state.dst,
            ex.method,
            ex.path,
            ex.status,
            ex.summary,
            ex.request,
            ex.response,
            ex.tls,
            self.capture,
            state.stream,
            self.node,
            flags,
        )

    # --- reporting ----------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """Every counter of every stage, for the end-of-run report and metrics."""
        return {
            "frames": self.frames,
            "bytes": self.bytes,
            "decode": self.decoder.stats.as_dict(),
            "flows": self.table.stats.as_dict(),
            "entries": dict(self.entries),
            "pairs": dict(self.pairs),
            "dissect_errors": dict(self.dissect_errors),
            "dissector_crashes": dict(self.dissector_crashes),
            "reorder": {"late": self.reorder.late, "forced": self.reorder.forced},
        }
