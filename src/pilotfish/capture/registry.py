"""The live capture backends by name, imported lazily.

A backend whose module cannot even be imported (a missing compiled helper, say) still
appears: its factory declines with the import error as the reason, so `best` moves on and
`--list-backends` can say why.
"""

from __future__ import annotations

import importlib

from pilotfish.capture.base import (
    BEST_ORDER,
    CaptureOptions,
    Source,
    SourceFactory,
    SourceUnavailable,
)

_MODULES = {
    "pfring": ("pilotfish.capture.pfring", "PfRingSource"),
    "afxdp": ("pilotfish.capture.afxdp", "AfXdpSource"),
    "afpacket": ("pilotfish.capture.afpacket", "AfPacketSource"),
}


def _factory(name: str) -> SourceFactory:
    module_name, class_name = _MODULES[name]

    def make(options: CaptureOptions) -> Source:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SourceUnavailable(name, f"backend not usable here: {exc}") from exc
        cls = getattr(module, class_name)
        source: Source = cls(options)
        return source

    return make


def factories() -> dict[str, SourceFactory]:
    """Every live backend, best first."""
    return {name: _factory(name) for name in BEST_ORDER}


def probe(options: CaptureOptions) -> list[tuple[str, bool, str]]:
    """Try to open each backend on `options` and close it again: (name, available, reason)."""
    rows: list[tuple[str, bool, str]] = []
    for name, factory in factories().items():
        try:
            source = factory(options)
            source.open()
        except SourceUnavailable as exc:
            rows.append((name, False, exc.reason))
            continue
        except OSError as exc:
            rows.append((name, False, str(exc)))
            continue
        detail = source.stats().reason or "available"
        source.close()
        rows.append((name, True, detail))
    return rows
