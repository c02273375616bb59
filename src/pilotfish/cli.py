"""The `pilotfish` command (argparse; every command imports what it needs when it runs).

    pilotfish read FILE [--filter QUERY] [--bpf EXPR] [--format table|jsonl|json] [--serve]
    pilotfish capture -i IFACE [--capture BACKEND] [--bpf EXPR] [-c N] [-w FILE] [--serve]
    pilotfish worker -i IFACE[,IFACE...] [--capture BACKEND] [--bpf EXPR] [--host H]
                     [--port P] [--data-dir DIR] [--node NAME] [--config FILE]
    pilotfish hub --worker URL [--worker URL ...] [--host 127.0.0.1] [--port 8898]

Exit codes: 0 success, 1 runtime failure, 2 unusable input or wrong usage (bad flag value,
missing or damaged file, invalid filter).  Entries go to stdout, the run summary and errors
to stderr, so `pilotfish read f.pcap --format jsonl | jq` stays clean.

Each command is two functions: `_add_NAME(commands)` declares its parser and points it at
`_run_NAME(args) -> exit code`; the steps run functions share are in clisteps.py.  Start-up
cost stays low because this module imports only the standard library; a run function imports
clisteps and its own machinery (the table renderer pulls in rich,
a `--config` file pulls in yaml, `capture` pulls in the live capture code).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TypeVar

from pilotfish import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from pilotfish.capture.base import CaptureOptions

EXIT_USAGE = 2
_N = TypeVar("_N", int, float)
BACKENDS = ("best", "pfring", "afxdp", "afpacket")


class CliError(Exception):
    """A failure to report as `pilotfish: MESSAGE` on stderr, exiting with `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --- parsing ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors in the house style: one `pilotfish: ...` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"pilotfish: {message} (see '{self.prog} --help')\n")


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[_Parser]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wide enough for the option column; shows a default only where one means something."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, "", False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text

    def _format_action(self, action: argparse.Action) -> str:
        # The commands one per line, without argparse's extra "COMMAND" line above them.
        if isinstance(action, argparse._SubParsersAction):
            return "".join(self._format_action(sub) for sub in action._get_subactions())
        return super()._format_action(action)


def _command(
    commands: Commands, name: str, summary: str, run: Callable[[argparse.Namespace], int]
) -> _Parser:
    """A sub-command `name` whose parsed arguments go to `run`, which returns the exit code."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        formatter_class=_HelpFormatter,
        allow_abbrev=False,  # a prefix must not turn into a flag another branch adds later
    )
    parser.set_defaults(run=run)
    return parser


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    return _number_range(int, "an integer", low, high)


def _float_range(low: float, high: float | None = None) -> Callable[[str], float]:
    return _number_range(float, "a number", low, high)


def _number_range(
    kind: Callable[[str], _N], noun: str, low: _N, high: _N | None
) -> Callable[[str], _N]:
    bounds = f"x>={low}" if high is None else f"{low}<=x<={high}"

    def parse(text: str) -> _N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not (low <= value and (high is None or value <= high)):  # NaN is in no range
            raise argparse.ArgumentTypeError(f"{text} is not in the range {bounds}")
        return value

    return parse


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _add_filters(parser: argparse.ArgumentParser, bpf_help: str) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument(
        "-f", "--filter", default="", metavar="QUERY",
        help="query: e.g. 'http && status_code >= 500'",
    )  # fmt: skip
    group.add_argument("--bpf", default="", metavar="EXPR", help=bpf_help)


def _add_output(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "-o", "--format", metavar="FORMAT",
        help="table | jsonl | json (default: table on a terminal, jsonl otherwise)",
    )  # fmt: skip
    group.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (over PILOTFISH_* variables and the file)")
    group.add_argument(
        "--body-limit", type=_int_range(0), metavar="BYTES",
        help="body bytes kept per message (default: 64 KiB)",
    )  # fmt: skip
    group.add_argument("--node", metavar="NAME", help="node name used in entry ids")
    group.add_argument("--config", type=_path, metavar="FILE", help="YAML settings file")


def _add_backend(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--capture", dest="backend", default="best", metavar="BACKEND",
        help="best | pfring | afxdp | afpacket",
    )  # fmt: skip


def _add_serve(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("serve")
    group.add_argument(
        "--serve", action="store_true",
        help="serve the entries (API + dashboard) on 127.0.0.1 until Ctrl-C",
    )  # fmt: skip
    group.add_argument(
        "--port", type=_int_range(1, 65535), default=8899, metavar="PORT", help="port for --serve"
    )


# --- read ---------------------------------------------------------------------------------


def _add_read(commands: Commands) -> None:
    parser = _command(
        commands, "read", "Read a capture file and print its request/response entries.", _run_read
    )
    parser.add_argument(
        "file", type=_path, metavar="FILE", help="pcap or pcapng file (optionally gzip-compressed)"
    )
    _add_filters(parser, "capture filter in tcpdump syntax, e.g. 'tcp port 80'")
    _add_output(parser)
    _add_settings(parser)
    _add_serve(parser)


def _run_read(args: argparse.Namespace) -> int:
    from pilotfish import clisteps as steps
    from pilotfish.offline import read_file
    from pilotfish.output import renderer

    if args.serve:
        return _serve_read(args)
    output_format = steps.output_format(args.format)
    settings = steps.settings(args)
    query, bpf = steps.query_matcher(args.filter, args.bpf)
    steps.start_job()
    out = renderer(output_format, sys.stdout.buffer, sys.stdout)
    try:
        result = read_file(
            args.file, settings, out.write, bpf=bpf, match=getattr(query, "match", None)
        )
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.close()
    if not args.quiet:
        steps.print_summary(result.summary)
    if result.error:
        raise CliError(result.error)
    return 0


def _serve_read(args: argparse.Namespace) -> int:
    from pilotfish import clisteps as steps
    from pilotfish.serve import serve_file

    if args.filter:
        raise CliError("--serve stores every entry; filter in the dashboard or the API (?q=)")
    steps.check_bpf(args.bpf, False)
    settings = steps.settings(args)
    steps.start_job()
    return serve_file(args.file, settings, "127.0.0.1", args.port, args.bpf)


# --- capture ------------------------------------------------------------------------------


def _add_capture(commands: Commands) -> None:
    parser = _command(
        commands,
        "capture",
        "Capture live traffic and print entries (or write packets with -w).",
        _run_capture,
    )
    group = parser.add_argument_group("capture")
    group.add_argument(
        "-i", "--interface", default="any", metavar="IFACES",
        help="interface(s), comma-separated, or 'any'",
    )  # fmt: skip
    _add_backend(group)
    group.add_argument(
        "--workers", type=_int_range(1, 64), default=1, metavar="N",
        help="processes sharing the capture, 1 to 64",
    )  # fmt: skip
    group.add_argument("-p", "--promiscuous", action="store_true", help="promiscuous mode")
    group.add_argument(
        "-B", "--buffer", type=_int_range(1, 4096), default=64, metavar="MIB",
        help="kernel buffer per interface in MiB (AF_PACKET ring, AF_XDP UMEM), default 64",
    )  # fmt: skip
    group.add_argument(
        "--list-backends", action="store_true", help="show which backends work here, and why"
    )
    _add_filters(parser, "kernel capture filter (tcpdump syntax)")
    stop = parser.add_argument_group("stop and write")
    stop.add_argument("-c", "--count", type=_int_range(1), metavar="N", help="stop after N packets")
    stop.add_argument(
        "--duration", type=_float_range(0), metavar="SECONDS", help="stop after SECONDS"
    )
    stop.add_argument(
        "-w", "--write", type=_path, metavar="FILE", help="write packets to a pcap file"
    )
    _add_output(parser)
    _add_settings(parser)
    _add_serve(parser)


def _run_capture(args: argparse.Namespace) -> int:
    from pilotfish import clisteps as steps
    from pilotfish.capture.base import CaptureOptions
    from pilotfish.clicapture import list_backends_table, run_capture_command
    from pilotfish.live import LiveOptions

    interfaces = steps.interfaces(args.interface)
    steps.check_backend(args.backend)
    options = CaptureOptions(interfaces=interfaces, bpf=args.bpf, promiscuous=args.promiscuous)
    options = options.with_buffer(args.buffer)
    if args.list_backends:
        list_backends_table(options)
        return 0
    steps.check_bpf(args.bpf, "any" in interfaces)
    if args.serve:
        return _serve_capture(args, options)
    output_format = steps.output_format(args.format)
    settings = steps.settings(args)
    query, _ = steps.query_matcher(args.filter, "")
    live = LiveOptions(
        backend=args.backend,
        count=args.count,
        duration=args.duration,
        write=args.write,
        workers=args.workers,
    )
    steps.start_job()
    return run_capture_command(options, live, settings, output_format, query, args.quiet)


def _serve_capture(args: argparse.Namespace, options: CaptureOptions) -> int:
    from pilotfish import clisteps as steps
    from pilotfish.serve import serve_capture

    fixed = (args.write, args.count, args.duration)
    if any(v is not None for v in fixed) or args.workers > 1:
        raise CliError("--serve runs until Ctrl-C; -w, -c, --duration and --workers do not apply")
    if args.filter:
        raise CliError("--serve stores every entry; filter in the dashboard or the API (?q=)")
    settings = steps.settings(args)
    steps.start_job()
    return serve_capture(settings, options, args.backend, "127.0.0.1", args.port)


# --- worker -------------------------------------------------------------------------------


def _add_worker(commands: Commands) -> None:
    parser = _command(
        commands,
        "worker",
        "Run one node: capture into a bounded store, and the API (lower priority) beside it.",
        _run_worker,
    )
    group = parser.add_argument_group("capture")
    group.add_argument(
        "-i", "--interface", required=True, metavar="IFACES",
        help="interface(s), comma-separated, or 'any'",
    )  # fmt: skip
    _add_backend(group)
    group.add_argument("--bpf", default="", metavar="EXPR", help="kernel capture filter")
    api = parser.add_argument_group("api and data")
    api.add_argument("--host", default="127.0.0.1", metavar="HOST", help="address to listen on")
    api.add_argument(
        "--port", type=_int_range(1, 65535), default=8899, metavar="PORT", help="API port"
    )
    api.add_argument(
        "--data-dir", type=_path, default="pilotfish-data", metavar="DIR",
        help="store, spool and stats of this node",
    )  # fmt: skip
    api.add_argument("--node", metavar="NAME", help="node name used in entry ids")
    api.add_argument("--config", type=_path, metavar="FILE", help="YAML settings file")
    parser.set_defaults(body_limit=None)


def _run_worker(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pilotfish import clisteps as steps
    from pilotfish.capture.base import CaptureOptions
    from pilotfish.node import NodeOptions, run_node
    from pilotfish.serve import dashboard_dir

    interfaces = steps.interfaces(args.interface)
    steps.check_backend(args.backend)
    steps.check_bpf(args.bpf, "any" in interfaces)
    settings = steps.settings(args)
    options = NodeOptions(
        # promiscuous: on a bridge (or a node's NIC) the traffic between pods is not
        # addressed to this host; the kernel filter (--bpf) still cuts what is not wanted
        capture=CaptureOptions(interfaces=interfaces, bpf=args.bpf, promiscuous=True),
        data_dir=Path(args.data_dir),
        backend=args.backend,
        host=args.host,
        port=args.port,
        static_dir=dashboard_dir(),
    )
    steps.start_job()
    return run_node(settings, options)


# --- demo ---------------------------------------------------------------------------------


def _add_demo(commands: Commands) -> None:
    parser = _command(
        commands,
        "demo",
        "Build the demo cluster (namespaces with real services), capture its traffic, show it.",
        _run_demo,
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--requests", type=_int_range(1, 100_000), default=200, metavar="N",
        help="requests the load loop sends, 1 to 100000",
    )  # fmt: skip
    load.add_argument(
        "--duration", type=_float_range(1, 600), default=10.0, metavar="SECONDS",
        help="at most this many seconds of load, 1 to 600",
    )  # fmt: skip
    _add_backend(parser.add_argument_group("capture"))
    _add_output(parser)


def _run_demo(args: argparse.Namespace) -> int:
    from pilotfish import clisteps as steps
    from pilotfish.config import Settings
    from pilotfish.demo import run_demo
    from pilotfish.output import renderer

    output_format = steps.output_format(args.format)
    steps.start_job()
    out = renderer(output_format, sys.stdout.buffer, sys.stdout)
    try:
        result = run_demo(
            Settings(node="demo"), out.write, args.requests, args.duration, args.backend
        )
    except Exception as exc:  # the testbed is already removed; say what went wrong
        raise CliError(f"demo failed: {exc}", 1) from exc
    finally:
        out.close()
    if not args.quiet:
        steps.print_summary(result.read.summary)
    if result.read.error:
        raise CliError(result.read.error, 1)
    return 0


# --- hub --------------------------------------------------------------------------------


def _add_hub(commands: Commands) -> None:
    parser = _command(
        commands,
        "hub",
        "Serve one API and dashboard over several workers (queries and streams merged).",
        _run_hub,
    )
    parser.add_argument(
        "--worker", action="append", required=True, metavar="URL",
        help="a worker's URL, e.g. http://10.0.0.5:8899 (repeat for each worker)",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=_int_range(1, 65535), default=8898, help="port to serve on")
    parser.add_argument(
        "--timeout", type=_float_range(0.1, 300), default=10.0, metavar="SECONDS",
        help="seconds to wait for a worker's answer, 0.1 to 300",
    )  # fmt: skip


def _run_hub(args: argparse.Namespace) -> int:
    from pilotfish.hub.serve import run_hub

    try:
        return run_hub(args.worker, args.host, args.port, timeout=args.timeout)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


# --- version ------------------------------------------------------------------------------


def _add_version(commands: Commands) -> None:
    _command(commands, "version", "Print the version.", _run_version)


def _run_version(args: argparse.Namespace) -> int:
    print(f"pilotfish {__version__}")
    return 0


# --- entry point --------------------------------------------------------------------------

COMMANDS: tuple[Callable[[Commands], None], ...] = (
    _add_read,
    _add_capture,
    _add_worker,
    _add_demo,
    _add_hub,
    _add_version,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one sub-parser per entry of COMMANDS, in that order."""
    parser = _Parser(
        prog="pilotfish",
        description="API traffic analyzer: see which pod called which service, "
        "with what and how slow.",
        epilog="Run 'pilotfish COMMAND --help' for the options of a command.\n"
        "Exit codes: 0 success, 1 runtime failure, 2 wrong usage or unusable input.",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest="command", required=True
    )
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not args_list:
        parser.print_help()
        return 0
    args = parser.parse_args(args_list)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CliError as exc:
        print(f"pilotfish: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # The reader went away (`| head`): not an error.  Point stdout at /dev/null so the
        # interpreter's final flush does not complain about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("pilotfish: aborted", file=sys.stderr)
        return 1
