"""The `pilotfish` command.

    pilotfish read FILE [--filter QUERY] [--bpf EXPR] [--format table|jsonl|json]

Exit codes: 0 success, 1 runtime failure, 2 unusable input or wrong usage (bad flag value,
missing or damaged file, invalid filter).  Entries go to stdout, the run summary and errors
to stderr, so `pilotfish read f.pcap --format jsonl | jq` stays clean.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from pilotfish import __version__
from pilotfish.capture.base import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, CaptureOptions
from pilotfish.capture.bpf import BpfError, compile_filter
from pilotfish.config import Settings, load
from pilotfish.live import LiveOptions
from pilotfish.model import Entry
from pilotfish.offline import read_file
from pilotfish.output import FORMATS, Format, renderer, summary_lines
from pilotfish.runtime import tune_gc

app = typer.Typer(
    name="pilotfish",
    help="API traffic analyzer: see which pod called which service, with what and how slow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `pilotfish: message` on stderr and return the Exit to raise."""
    print(f"pilotfish: {message}", file=sys.stderr)
    return typer.Exit(code)


def _settings(config: Path | None, overrides: dict[str, object]) -> Settings:
    try:
        return load(config, overrides={k: v for k, v in overrides.items() if v is not None})
    except (OSError, msgspec.ValidationError) as exc:
        raise fail(f"configuration: {exc}") from exc
    except Exception as exc:  # yaml errors
        raise fail(f"configuration: {exc}") from exc


def _format(fmt: str | None) -> Format:
    if fmt is None:
        return "table" if sys.stdout.isatty() else "jsonl"
    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    return fmt


def _query_matcher(text: str, bpf: str) -> tuple[object | None, str]:
    """Compile --filter as the query language; an old-style capture filter still works."""
    if not text.strip():
        return None, bpf
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
        raise fail(f"invalid filter: {exc}") from exc


@app.command()
def read(
    file: Annotated[Path, typer.Argument(help="pcap or pcapng file (optionally gzip-compressed)")],
    filter: Annotated[
        str, typer.Option("--filter", "-f", help="query: e.g. 'http && status_code >= 500'")
    ] = "",
    bpf: Annotated[
        str, typer.Option("--bpf", help="capture filter in tcpdump syntax, e.g. 'tcp port 80'")
    ] = "",
    fmt: Annotated[str | None, typer.Option("--format", "-o", help="table | jsonl | json")] = None,
    body_limit: Annotated[
        int | None, typer.Option("--body-limit", help="body bytes kept per message", min=0)
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="node name used in entry ids")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML settings file")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary on stderr")] = False,
) -> None:
    """Read a capture file and print its request/response entries."""
    output_format = _format(fmt)
    settings = _settings(config, {"dissect.body_limit": body_limit, "node": node})
    query, bpf = _query_matcher(filter, bpf)
    out = renderer(output_format, sys.stdout.buffer, sys.stdout)
    match = getattr(query, "match", None)

    def emit(entry: Entry) -> None:
        out.write(entry)

    try:
        result = read_file(file, settings, emit, bpf=bpf, match=match)
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.close()
    if not quiet:
        for line in summary_lines(result.summary):
            print(f"pilotfish: {line}", file=sys.stderr)
    if result.error:
        raise fail(result.error)


@app.command()
def capture(
    interface: Annotated[
        str, typer.Option("--interface", "-i", help="interface(s), comma-separated, or 'any'")
    ] = "any",
    backend: Annotated[
        str, typer.Option("--capture", help="best | pfring | afxdp | afpacket")
    ] = "best",
    filter: Annotated[
        str, typer.Option("--filter", "-f", help="query: e.g. 'http && status_code >= 500'")
    ] = "",
    bpf: Annotated[str, typer.Option("--bpf", help="kernel capture filter (tcpdump syntax)")] = "",
    count: Annotated[
        int | None, typer.Option("-c", "--count", help="stop after N packets", min=1)
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="stop after SECONDS", min=0)
    ] = None,
    write: Annotated[
        Path | None, typer.Option("-w", "--write", help="write packets to a pcap file")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-o", help="table | jsonl | json")] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="processes sharing the capture", min=1, max=64)
    ] = 1,
    promiscuous: Annotated[
        bool, typer.Option("--promiscuous", "-p", help="promiscuous mode")
    ] = False,
    list_backends: Annotated[
        bool, typer.Option("--list-backends", help="show which backends work here, and why")
    ] = False,
    body_limit: Annotated[
        int | None, typer.Option("--body-limit", help="body bytes kept per message", min=0)
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="node name used in entry ids")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML settings file")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary on stderr")] = False,
) -> None:
    """Capture live traffic and print entries (or write packets with -w)."""
    from pilotfish.clicapture import list_backends_table, run_capture_command

    interfaces = [i.strip() for i in interface.split(",") if i.strip()]
    if not interfaces:
        raise fail("-i needs at least one interface")
    if backend not in ("best", "pfring", "afxdp", "afpacket"):
        raise fail(f"--capture must be best, pfring, afxdp or afpacket (got {backend!r})")
    options = CaptureOptions(interfaces=interfaces, bpf=bpf, promiscuous=promiscuous)
    if list_backends:
        list_backends_table(options)
        return
    if bpf:
        try:
            compile_filter(bpf, LINKTYPE_LINUX_SLL2 if "any" in interfaces else LINKTYPE_ETHERNET)
        except BpfError as exc:
            raise fail(f"invalid capture filter {bpf!r}: {exc}") from exc
    output_format = _format(fmt)
    settings = _settings(config, {"dissect.body_limit": body_limit, "node": node})
    query, _ = _query_matcher(filter, "")
    live = LiveOptions(
        backend=backend, count=count, duration=duration, write=write, workers=workers
    )
    code = run_capture_command(options, live, settings, output_format, query, quiet)
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    requests: Annotated[
        int, typer.Option("--requests", help="requests the load loop sends", min=1, max=100_000)
    ] = 200,
    duration: Annotated[
        float, typer.Option("--duration", help="at most this many seconds of load", min=1, max=600)
    ] = 10.0,
    backend: Annotated[
        str, typer.Option("--capture", help="best | pfring | afxdp | afpacket")
    ] = "best",
    fmt: Annotated[str | None, typer.Option("--format", "-o", help="table | jsonl | json")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary on stderr")] = False,
) -> None:
    """Build the demo cluster (namespaces with real services), capture its traffic, show it."""
    from pilotfish.demo import run_demo

    output_format = _format(fmt)
    out = renderer(output_format, sys.stdout.buffer, sys.stdout)
    try:
        result = run_demo(Settings(node="demo"), out.write, requests, duration, backend)
    except Exception as exc:  # the testbed is already removed; say what went wrong
        raise fail(f"demo failed: {exc}", 1) from exc
    finally:
        out.close()
    if not quiet:
        for line in summary_lines(result.read.summary):
            print(f"pilotfish: {line}", file=sys.stderr)
    if result.read.error:
        raise fail(result.read.error, 1)


@app.command()
def version() -> None:
    """Print the version."""
    print(f"pilotfish {__version__}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="pilotfish: %(message)s")
    tune_gc()
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
