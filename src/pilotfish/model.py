"""The shared vocabulary of pilotfish: entries and the small records the stages pass on.

Everything a user sees (JSON lines, the REST API, the dashboard) is an `Entry` encoded by
msgspec.  The hot path between capture and dissection deliberately uses plain tuples
(`Frame`, `L4Packet`) instead of objects: they are created hundreds of thousands of times a
second.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias

import msgspec

PROTOCOLS: Final = (
    "http",
    "http2",
    "grpc",
    "websocket",
    "dns",
    "redis",
    "postgres",
    "kafka",
    "amqp",
    "tls",
    "tcp",
    "udp",
)
Protocol: TypeAlias = str  # one of PROTOCOLS

# --- hot-path records (tuples on purpose) ------------------------------------------------

Frame: TypeAlias = tuple[float, int, bytes, int]
"""One captured frame: (timestamp, linktype, data, original wire length)."""

L4Packet: TypeAlias = tuple[int, bytes, int, bytes, int, int, int, int, bytes]
"""A decoded transport segment:
(ip_proto, src_addr, src_port, dst_addr, dst_port, tcp_seq, tcp_ack, tcp_flags, payload).
Addresses are raw bytes (4 for IPv4, 16 for IPv6); seq/ack/flags are 0 for UDP."""

IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10

# Directions inside a flow: the client (initiator) sends requests, the server answers.
CLIENT: Final = 0
SERVER: Final = 1

FlowKey: TypeAlias = tuple[bytes, int, bytes, int, int]
"""(client_addr, client_port, server_addr, server_port, ip_proto)."""


# --- entries -------------------------------------------------------------------------------


class Endpoint(msgspec.Struct):
    """One side of a conversation, tagged with its Kubernetes identity when known."""

    ip: str
    port: int
    name: str = ""
    pod: str = ""
    namespace: str = ""
    service: str = ""
    node: str = ""


class Payload(msgspec.Struct, omit_defaults=True):
    """A request or a response as seen on the wire.

    `size` counts the bytes of the whole message on the wire (headers and framing included);
    `body` is the decoded body (Content-Encoding and Transfer-Encoding undone), cut at the
    configured body limit with `truncated` set.  Binary bodies are base64 with
    `encoding="base64"`.  Protocol-specific details live in the optional fields below.
    """

    size: int = 0
    headers: dict[str, str] = {}
    body: str = ""
    body_size: int = 0
    truncated: bool = False
    encoding: Literal["text", "base64"] = "text"
    version: str | None = None
    questions: list[dict[str, Any]] | None = None
    answers: list[dict[str, Any]] | None = None
    info: dict[str, Any] | None = None


class Entry(msgspec.Struct, omit_defaults=False):
    """One request/response exchange (or one plain connection/datagram exchange)."""

    id: str
    protocol: Protocol
    timestamp: float
    elapsed_us: int | None
    src: Endpoint
    dst: Endpoint
    method: str = ""
    path: str = ""
    status: int | str | None = None
    summary: str = ""
    request: Payload | None = None
    response: Payload | None = None
    tls: bool = False
    capture: str = ""
    stream: str = ""
    node: str = ""
    flags: list[str] = []


class Exchange(msgspec.Struct):
    """What a dissector produces: a paired (or unpaired) request and response.

    The pipeline turns it into an `Entry` by adding identity, endpoints and ids.
    `request_ts`/`response_ts` are the timestamps of the first byte of each message.
    `flags` marks anything the user should know: "gap" (bytes were lost inside), "no-response",
    "no-request" (picked up mid-stream), "truncated" (stream cut by a byte cap).
    `upgrade` names the protocol the connection switches to after this exchange.
    """

    protocol: Protocol
    request_ts: float | None
    response_ts: float | None
    method: str = ""
    path: str = ""
    status: int | str | None = None
    summary: str = ""
    request: Payload | None = None
    response: Payload | None = None
    flags: list[str] = []
    upgrade: str | None = None
    tls: bool = False


def summary_of(method: str, path: str, status: int | str | None) -> str:
    """The one-line summary shown in tables: `GET /api -> 200`."""
    head = f"{method} {path}".strip()
    if status is None or status == "":
        return head
    return f"{head} -> {status}"


ENTRY_ENCODER: Final = msgspec.json.Encoder()
ENTRY_DECODER: Final = msgspec.json.Decoder(Entry)
