"""One settings object for every component: YAML file < environment (PILOTFISH_*) < CLI flags.

Every bound pilotfish keeps (bytes per stream, flows in the table, fragments pending, body
size kept) is a field here, so the limits are visible, documented and testable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


class DecodeLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Bounds of the L2-L4 decoder."""

    max_fragment_sets: int = 4096  # IP datagrams being reassembled at once
    fragment_timeout: float = 30.0  # seconds (capture time) before an incomplete set is dropped
    max_datagram: int = 65535  # bytes of a reassembled IP datagram
    max_fragment_bytes: int = 16 * 1024 * 1024  # fragment bytes held across all datagrams


class FlowLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Bounds of the flow table and TCP reassembly."""

    max_flows: int = 100_000  # hard cap on tracked flows; the oldest idle one is evicted
    tcp_idle_timeout: float = 300.0  # seconds without a packet before a TCP flow is closed
    udp_idle_timeout: float = 30.0
    max_stream_bytes: int = 64 * 1024 * 1024  # per direction; beyond this the stream is cut
    max_pending_bytes: int = 1 * 1024 * 1024  # out-of-order bytes buffered per direction
    max_total_pending: int = 256 * 1024 * 1024  # out-of-order bytes buffered across all flows


class DissectLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Bounds of the protocol dissectors."""

    body_limit: int = 64 * 1024  # decoded body bytes kept per message
    max_header_bytes: int = 64 * 1024  # a header block larger than this ends dissection
    max_pending_messages: int = 1024  # unanswered requests kept per connection
    max_decompressed: int = 8 * 1024 * 1024  # decompression bomb guard


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    """Everything configurable.  Defaults are what a newcomer gets."""

    node: str = "local"
    decode: DecodeLimits = msgspec.field(default_factory=DecodeLimits)
    flows: FlowLimits = msgspec.field(default_factory=FlowLimits)
    dissect: DissectLimits = msgspec.field(default_factory=DissectLimits)
    reorder_bytes: int = 64 * 1024 * 1024  # completed entries held back to emit in timestamp order
    storage_limit: int = 500 * 1024 * 1024  # entry store (SQLite) bytes per worker
    spool_limit: int = 256 * 1024 * 1024  # raw packets kept for PCAP export, bytes per worker


ENV_PREFIX = "PILOTFISH_"


def load(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the YAML file, then `PILOTFISH_SECTION__FIELD` variables, then overrides.

    Overrides use dotted keys (`"dissect.body_limit"`).  Raises `msgspec.ValidationError`
    naming the offending field on a wrong type or an unknown key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        loaded = _yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise msgspec.ValidationError(f"{path}: expected a mapping at the top level")
        data = loaded
    env = os.environ if env is None else env
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            # Other PILOTFISH_* variables belong to components (PILOTFISH_PFRING_LIBRARY);
            # only those naming a settings field are settings.
            if dotted.split(".")[0] in Settings.__struct_fields__:
                _set_dotted(data, dotted, _yaml(value))
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return msgspec.convert(data, Settings, strict=False)


def _yaml(text: str) -> Any:
    """Parse YAML; the parser is imported only when a file or a variable needs it."""
    import yaml

    return yaml.safe_load(text)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise msgspec.ValidationError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value
