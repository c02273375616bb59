"""choose(): best-first with one reason per refusal; a forced backend fails with its reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pilotfish.capture.base import (
    BEST_ORDER,
    CaptureOptions,
    CaptureStats,
    Source,
    SourceUnavailable,
    choose,
)
from pilotfish.model import Frame

OPTS = CaptureOptions(interfaces=["eth0"])


class _Fake:
    def __init__(self, name: str) -> None:
        self.name = name
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def batches(self) -> Iterator[list[Frame]]:
        yield []

    def stats(self) -> CaptureStats:
        return CaptureStats(backend=self.name)

    def close(self) -> None:
        pass


def _declines(name: str, reason: str) -> object:
    def make(options: CaptureOptions) -> Source:
        raise SourceUnavailable(name, reason)

    return make


def test_best_order_is_pfring_afxdp_afpacket() -> None:
    assert BEST_ORDER == ("pfring", "afxdp", "afpacket")


def test_best_falls_back_and_keeps_every_reason() -> None:
    factories = {
        "pfring": _declines("pfring", "module missing"),
        "afxdp": _declines("afxdp", "MTU too large"),
        "afpacket": lambda o: _Fake("afpacket"),
    }
    choice = choose(factories, OPTS)  # type: ignore[arg-type]
    assert choice.source.name == "afpacket" and choice.source.opened  # type: ignore[attr-defined]
    assert [(d.backend, d.reason) for d in choice.declined] == [
        ("pfring", "module missing"),
        ("afxdp", "MTU too large"),
    ]


def test_forced_backend_fails_with_its_own_reason() -> None:
    factories = {"pfring": _declines("pfring", "module missing"), "afpacket": lambda o: _Fake("x")}
    with pytest.raises(SourceUnavailable, match="pfring: module missing"):
        choose(factories, OPTS, "pfring")  # type: ignore[arg-type]
    with pytest.raises(SourceUnavailable, match="unknown capture backend"):
        choose(factories, OPTS, "dpdk")  # type: ignore[arg-type]


def test_nothing_available_joins_the_reasons() -> None:
    factories = {n: _declines(n, f"no {n}") for n in BEST_ORDER}
    with pytest.raises(SourceUnavailable) as info:
        choose(factories, OPTS)  # type: ignore[arg-type]
    assert "no pfring" in str(info.value) and "no afpacket" in str(info.value)


def test_fake_is_a_source() -> None:
    assert isinstance(_Fake("x"), Source)


def test_buffer_sets_the_ring_and_the_umem_in_mib() -> None:
    options = CaptureOptions(interfaces=["eth0"])
    assert options.block_count * options.block_size == 64 << 20  # the defaults agree
    assert options.umem_frames * options.umem_frame_size == 64 << 20
    small = options.with_buffer(16)
    assert (small.block_count, small.umem_frames) == (8, 8192)
    assert small.interfaces == ["eth0"] and small.block_size == options.block_size
    tiny = options.with_buffer(1)
    assert (tiny.block_count, tiny.umem_frames) == (2, 512)
    with pytest.raises(ValueError, match="at least 1 MiB"):
        options.with_buffer(0)
