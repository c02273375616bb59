"""Does a flow speak DNS?  Cheap checks of the header and the first question, no parsing.

UDP: a datagram is complete, so the answer is YES or NO.  A plausible message has a known
opcode, the reserved Z bit clear, modest section counts, at least one question (mDNS
announcements on a hinted port may have none but then carry answers) and a first question
whose labels fit the datagram and end with a known class.

TCP: the 2-byte length prefix must announce at least a header and a question; MAYBE until the
header and question are in the sniffed bytes (a hinted port needs only the header).
"""

from __future__ import annotations

import struct
from typing import Final

from pilotfish.dissect.httpstart import MAYBE, NO, YES

_HEADER: Final = struct.Struct("!HHHHHH")
_QUESTION_TAIL: Final = struct.Struct("!HH")
_OPCODES: Final = frozenset((0, 1, 2, 4, 5))
_CLASSES: Final = frozenset((1, 3, 4, 254, 255))
_MAX_COUNT: Final = 64
_MIN_MESSAGE: Final = 12 + 5  # header + root name + type + class


def sniff_udp(client: bytes, server: bytes, hinted: bool) -> int:
    """Verdict from the first datagram (client's if any, else the server's)."""
    return message_verdict(client or server, hinted, complete=True)


def sniff_tcp(client: bytes, server: bytes, hinted: bool) -> int:
    """Verdict from the first length-prefixed message of the client (else the server)."""
    data = client or server
    if len(data) < 2:
        return MAYBE
    (length,) = struct.unpack_from("!H", data)
    if length < _MIN_MESSAGE:
        return NO
    return message_verdict(data[2 : 2 + length], hinted, complete=len(data) >= 2 + length)


def message_verdict(msg: bytes, hinted: bool, complete: bool) -> int:
    """YES/NO/MAYBE for the start of one DNS message (`complete`: nothing more will come)."""
    if len(msg) < 12:
        return NO if complete else MAYBE
    _ident, flags, qd, an, ns, ar = _HEADER.unpack_from(msg)
    if (flags >> 11) & 0xF not in _OPCODES or flags & 0x40:
        return NO
    if max(qd, an, ns, ar) > _MAX_COUNT:
        return NO
    if qd == 0:
        return YES if hinted and flags & 0x8000 and an and complete else NO
    pos = 12
    while pos < len(msg):
        label = msg[pos]
        if label == 0:
            if pos + 5 > len(msg):
                break
            qtype, qclass = _QUESTION_TAIL.unpack_from(msg, pos + 1)
            return YES if qtype and (qclass & 0x7FFF) in _CLASSES else NO
        if label > 63:
            return NO
        pos += 1 + label
    if complete:
        return NO
    return YES if hinted else MAYBE
