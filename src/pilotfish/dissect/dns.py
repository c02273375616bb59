"""DNS over UDP and TCP: dnslib parses, queries and responses pair by message id.

UDP: every `feed()` is one datagram, one message.  TCP: messages carry a 2-byte length
prefix; several may share a segment and one may span segments.

Pairing: by DNS id within the flow (the flow already is the 5-tuple).  A response without a
waiting query -> "no-request"; queries never answered are flushed by `close()` with
"no-response".  A repeated query id while the first is still waiting is a retransmission:
counted in the waiting query's `info["retransmits"]`, not a new exchange.

Entry fields: method = type of the first question (A, AAAA, ...), path = its name without the
trailing dot, status = rcode name (NOERROR, NXDOMAIN, ...).  `questions` and `answers` are
lists of small dicts; authority and additional records go to `info`.  `size` is the message
length on the wire (TCP: plus the 2-byte prefix).

Bounds and malformed input:
- waiting queries: `limits.max_pending_messages`; beyond it the oldest is flushed "no-response".
- records rendered per section: `_MAX_RECORDS`, the rest counted in `info["omitted"]`.
- TCP: a malformed message or a gap -> DissectError (framing cannot be trusted afterwards).
- UDP: a malformed datagram is skipped and counted in `malformed` (one bad datagram must not
  end a conversation), unless no datagram of the conversation parsed yet and
  `_UDP_GIVE_UP` bad ones arrived: then DissectError so the flow is shown as plain udp.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from dnslib import CLASS, QTYPE, RCODE, DNSError, DNSRecord

from pilotfish.config import DissectLimits
from pilotfish.dissect.base import DissectError
from pilotfish.model import Exchange, Payload, summary_of

_MAX_RECORDS: Final = 64
_UDP_GIVE_UP: Final = 8
_LENGTH: Final = struct.Struct("!H")
# dnslib wraps most failures in DNSError; these escape from a few record decoders.
_PARSE_ERRORS: Final = (DNSError, ValueError, IndexError, UnicodeError, struct.error)

# A waiting query: (ts, method, path, payload)
_Query = tuple[float, str, str, Payload]


class DnsDissector:
    """DNS messages of one flow (UDP conversation or TCP connection)."""

    protocol = "dns"

    def __init__(self, limits: DissectLimits, tcp: bool = False) -> None:
        self._limits = limits
        self._tcp = tcp
        self._waiting: dict[int, _Query] = {}
        self._buffers = [b"", b""]
        self._starts = [0.0, 0.0]  # when the partial message in _buffers began
        self._parsed = 0
        self.malformed = 0  # UDP datagrams skipped

    # --- the Dissector contract ----------------------------------------------------------

    def feed(self, direction: int, data: bytes, ts: float) -> list[Exchange]:
        out: list[Exchange] = []
        if not self._tcp:
            self._message(data, ts, 0, out)
            return out
        held = self._buffers[direction]
        buf = held + data if held else data
        start_ts = self._starts[direction] if held else ts  # a message's first byte
        pos = 0
        while len(buf) - pos >= 2:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length < 12:
                raise DissectError(f"dns: TCP message of {length} bytes")
            end = pos + 2 + length
            if end > len(buf):
                break
            self._message(buf[pos + 2 : end], start_ts, 2, out)
            pos = end
            start_ts = ts
        self._buffers[direction] = buf[pos:]
        self._starts[direction] = start_ts
        return out

    def gap(self, direction: int, size: int, ts: float) -> list[Exchange]:
        raise DissectError("dns: bytes lost, TCP framing cannot be recovered")

    def close(self, ts: float) -> list[Exchange]:
        out = [self._unanswered(query) for query in self._waiting.values()]
        self._waiting.clear()
        self._buffers = [b"", b""]
        return out

    def pending_since(self) -> float | None:
        if not self._waiting:
            return None
        return min(query[0] for query in self._waiting.values())

    # --- messages -----------------------------------------------------------------------

    def _message(self, data: bytes, ts: float, framing: int, out: list[Exchange]) -> None:
        try:
            record = DNSRecord.parse(data)
            payload = _payload(record, len(data) + framing)
        except _PARSE_ERRORS as exc:
            if self._tcp:
                raise DissectError(f"dns: malformed message: {exc}") from exc
            self.malformed += 1
            if not self._parsed and self.malformed >= _UDP_GIVE_UP:
                raise DissectError("dns: no parseable datagram") from exc
            return
        self._parsed += 1
        ident = record.header.id
        method, path = _first_question(record)
        if not record.header.qr:
            waiting = self._waiting.get(ident)
            if waiting is not None:  # a retransmission of a query still unanswered
                info = waiting[3].info
                if info is not None:
                    info["retransmits"] += 1
                else:
                    waiting[3].info = {"retransmits": 1}
                return
            self._waiting[ident] = (ts, method, path, payload)
            if len(self._waiting) > self._limits.max_pending_messages:
                oldest = next(iter(self._waiting))
                out.append(self._unanswered(self._waiting.pop(oldest)))
            return
        status = str(RCODE.get(record.header.rcode))
        query = self._waiting.pop(ident, None)
        if query is None:
            out.append(
                Exchange(
                    "dns",
                    None,
                    ts,
                    method,
                    path,
                    status,
                    summary_of(method, path, status),
                    None,
                    payload,
                    ["no-request"],
                )
            )
            return
        q_ts, q_method, q_path, q_payload = query
        out.append(
            Exchange(
                "dns",
                q_ts,
                ts,
                q_method,
                q_path,
                status,
                summary_of(q_method, q_path, status),
                q_payload,
                payload,
            )
        )

    def _unanswered(self, query: _Query) -> Exchange:
        ts, method, path, payload = query
        return Exchange(
            "dns",
            ts,
            None,
            method,
            path,
            None,
            summary_of(method, path, None),
            payload,
            None,
            ["no-response"],
        )


def _payload(record: DNSRecord, size: int) -> Payload:
    """Questions, and for responses the records; raises on undecodable record data."""
    if not record.header.qr:
        return Payload(size=size, questions=_questions(record))
    info: dict[str, Any] = {}
    answers, omitted = _section(record.rr)
    for key, records in (("authority", record.auth), ("additional", record.ar)):
        if records:
            info[key], cut = _section(records)
            omitted += cut
    if omitted:
        info["omitted"] = omitted
    if record.header.tc:
        info["tc"] = True
    return Payload(size=size, questions=_questions(record), answers=answers, info=info or None)


def _first_question(record: DNSRecord) -> tuple[str, str]:
    if not record.questions:
        return "", ""
    question = record.questions[0]
    return str(QTYPE.get(question.qtype)), _name(question.qname)


def _questions(record: DNSRecord) -> list[dict[str, Any]]:
    return [
        {"name": _name(q.qname), "type": str(QTYPE.get(q.qtype)), "class": _class(q.qclass)}
        for q in record.questions[:_MAX_RECORDS]
    ]


def _section(records: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Rendered records (at most _MAX_RECORDS) and how many were left out."""
    rendered = [
        {
            "name": _name(rr.rname),
            "type": str(QTYPE.get(rr.rtype)),
            "ttl": rr.ttl,
            "data": str(rr.rdata),
        }
        for rr in records[:_MAX_RECORDS]
    ]
    return rendered, max(0, len(records) - _MAX_RECORDS)


def _name(label: Any) -> str:
    text = str(label)
    return text[:-1] if text.endswith(".") and len(text) > 1 else text


def _class(value: int) -> str:
    # mDNS sets the top bit for "unicast response" (questions) / "cache flush" (records).
    return str(CLASS.get(value & 0x7FFF))
