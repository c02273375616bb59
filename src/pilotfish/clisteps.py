"""Steps the command run functions of cli.py share: settings, output format, filters,
interface and backend checks, job start-up and the run summary.

Imported inside a run function, never when cli.py loads, so a command only pays for what it
uses (`pilotfish version` loads no more than cli.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pilotfish.cli import BACKENDS, CliError

if TYPE_CHECKING:
    from pilotfish.config import Settings
    from pilotfish.output import Format


def start_job() -> None:
    """Before a long run, once its modules are loaded: components' warnings (a capture
    backend declining, ...) go to stderr as `pilotfish: ...`; the garbage collector is set
    for a packet pipeline (pilotfish.runtime)."""
    import logging

    from pilotfish.runtime import tune_gc

    logging.basicConfig(level=logging.WARNING, format="pilotfish: %(message)s")
    tune_gc()


def settings(args: argparse.Namespace) -> Settings:
    import msgspec

    from pilotfish.config import load

    overrides = {"dissect.body_limit": args.body_limit, "node": args.node}
    try:
        return load(args.config, overrides={k: v for k, v in overrides.items() if v is not None})
    except (OSError, msgspec.ValidationError) as exc:
        raise CliError(f"configuration: {exc}") from exc
    except Exception as exc:  # yaml errors
        raise CliError(f"configuration: {exc}") from exc


def output_format(fmt: str | None) -> Format:
    from pilotfish.output import FORMATS

    if fmt is None:
        return "table" if sys.stdout.isatty() else "jsonl"
    for known in FORMATS:
        if fmt == known:
            return known
    raise CliError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def query_matcher(text: str, bpf: str) -> tuple[object | None, str]:
    """Compile --filter as the query language; an old-style capture filter still works."""
    if not text.strip():
        return None, bpf
    from pilotfish.capture.bpf import BpfError, compile_filter
    from pilotfish.query import QueryError, compile_query

    try:
        return compile_query(text), bpf
    except QueryError as exc:
        if not bpf:
            try:
                compile_filter(text, 1)
            except BpfError:
                pass
            else:
                print(
                    f"pilotfish: note: --filter {text!r} is a capture filter; use --bpf for those",
                    file=sys.stderr,
                )
                return None, text
        raise CliError(f"invalid filter: {exc}") from exc


def interfaces(text: str) -> list[str]:
    interfaces = [i.strip() for i in text.split(",") if i.strip()]
    if not interfaces:
        raise CliError("-i needs at least one interface")
    return interfaces


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise CliError(f"--capture must be best, pfring, afxdp or afpacket (got {backend!r})")


def check_bpf(bpf: str, cooked: bool) -> None:
    if bpf:
        from pilotfish.capture.base import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2
        from pilotfish.capture.bpf import BpfError, compile_filter

        try:
            compile_filter(bpf, LINKTYPE_LINUX_SLL2 if cooked else LINKTYPE_ETHERNET)
        except BpfError as exc:
            raise CliError(f"invalid capture filter {bpf!r}: {exc}") from exc


def print_summary(summary: dict[str, object]) -> None:
    from pilotfish.output import summary_lines

    for line in summary_lines(summary):
        print(f"pilotfish: {line}", file=sys.stderr)
