"""The `pilotfish` command as a user runs it: output formats, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotfish.cli import main
from tests.imports import loaded, modules_after
from tests.test_offline import http_capture


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilotfish", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return http_capture(tmp_path_factory.mktemp("cli") / "h.pcap")


def test_jsonl_only_entries_on_stdout_summary_on_stderr(capture: Path) -> None:
    r = run("read", str(capture), "--format", "jsonl")
    assert r.returncode == 0
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["path"] for d in docs] == ["/one", "/api", "example.com", "/two"]
    assert "4 entries (dns 1, http 3)" in r.stderr


def test_json_array_and_table(capture: Path) -> None:
    r = run("read", str(capture), "--format", "json", "-q")
    assert [d["status"] for d in json.loads(r.stdout)] == [200, 201, "NOERROR", 500]
    assert r.stderr == ""
    t = run("read", str(capture), "--format", "table", "-q")
    lines = t.stdout.splitlines()
    assert lines[0].startswith("TIME") and len(lines) == 5
    assert lines[1].endswith("GET /one")


def test_query_filter(capture: Path) -> None:
    r = run("read", str(capture), "-o", "jsonl", "-q", "--filter", 'http && method == "POST"')
    assert [json.loads(x)["path"] for x in r.stdout.splitlines()] == ["/api"]


def test_invalid_filter_points_at_the_column(capture: Path) -> None:
    r = run("read", str(capture), "--filter", "http && stauts == 200")
    assert r.returncode == 2
    assert "column 8" in r.stderr and "stauts" in r.stderr
    assert r.stdout == ""


def test_capture_filter_in_filter_flag_still_works_with_a_note(capture: Path) -> None:
    r = run("read", str(capture), "-o", "jsonl", "--filter", "tcp port 8080")
    assert r.returncode == 0
    assert [json.loads(x)["path"] for x in r.stdout.splitlines()] == ["/api"]
    assert "use --bpf" in r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("read", "/nonexistent/x.pcap"), "No such file or directory"),
        (("read", "{capture}", "--format", "xml"), "--format must be one of"),
        (("read", "{capture}", "--bpf", "tcp port"), "invalid capture filter"),
    ],
)
def test_usage_and_input_errors_exit_2(capture: Path, args: tuple[str, ...], needle: str) -> None:
    r = run(*(a.format(capture=capture) for a in args))
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_truncated_file_prints_recovered_entries_then_fails(capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture.read_bytes()[:-30])
    r = run("read", str(cut), "-o", "jsonl")
    assert r.returncode == 2
    assert len(r.stdout.splitlines()) >= 3
    assert f"pilotfish: {cut}" in r.stderr


def test_version() -> None:
    assert run("version").stdout.startswith("pilotfish ")


def test_no_arguments_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pilotfish [-h] COMMAND ...")
    for line in ("read ", "capture ", "demo ", "version "):
        assert f"\n  {line}" in out


def test_read_help_has_groups_and_metavars(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["read", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pilotfish read [-h] [-f QUERY] [--bpf EXPR] [-o FORMAT] [-q]")
    for group in ("positional arguments:", "filters:", "output:", "settings ("):
        assert f"\n{group}" in out
    for option in ("-f QUERY, --filter QUERY", "-o FORMAT, --format FORMAT", "--body-limit BYTES"):
        assert f"\n  {option} " in out
    assert "pcap or pcapng file (optionally gzip-compressed)" in out


def test_capture_help_shows_defaults_that_mean_something(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["capture", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "best | pfring | afxdp | afpacket (default: best)" in out
    assert "processes sharing the capture, 1 to 64 (default: 1)" in out
    assert "(default: None)" not in out and "(default: False)" not in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["read"], "the following arguments are required: FILE"),
        (["read", "x.pcap", "--body-limit", "-1"], "--body-limit: -1 is not in the range x>=0"),
        (["read", "x.pcap", "--body-limit", "lots"], "--body-limit: 'lots' is not an integer"),
        (["capture", "--workers", "65"], "--workers: 65 is not in the range 1<=x<=64"),
        (["demo", "--duration", "0.5"], "--duration: 0.5 is not in the range 1<=x<=600"),
        (["capture", "--duration", "nan"], "--duration: nan is not in the range x>=0"),
        (["read", "x.pcap", "--form", "json"], "unrecognized arguments: --form"),
        (["frob"], "invalid choice: 'frob'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("pilotfish: ") and err.count("\n") == 1
    assert needle in err and "--help')" in err


def test_bad_backend_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capture", "--capture", "dpdk"]) == 2
    assert capsys.readouterr().err == (
        "pilotfish: --capture must be best, pfring, afxdp or afpacket (got 'dpdk')\n"
    )


def test_the_last_format_given_wins(capture: Path) -> None:
    r = run("read", str(capture), "--format", "jsonl", "-q", "--format", "json")
    assert [d["path"] for d in json.loads(r.stdout)] == ["/one", "/api", "example.com", "/two"]


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("pilotfish 0.")


# --- start-up cost: each command loads only what it uses ----------------------------------

_NOT_FOR_READ = (
    "rich",
    "yaml",
    "pilotfish.api",
    "pilotfish.live",
    "pilotfish.clicapture",
    "pilotfish.testbed",
    "pilotfish.capture.bpf",
    "pilotfish.query",
    "starlette",
    "uvicorn",
    "ctypes",
)


def _read(path: Path, *args: str) -> str:
    return f"from pilotfish.cli import main\nmain(['read', {str(path)!r}, '-q', *{args!r}])"


def test_read_jsonl_loads_no_table_config_api_or_capture_code(capture: Path) -> None:
    modules = modules_after(_read(capture, "-o", "jsonl"))
    assert {"pilotfish.offline", "pilotfish.pipeline", "pilotfish.runtime"} <= modules
    assert loaded(modules, *_NOT_FOR_READ) == []


def test_read_loads_rich_yaml_and_the_query_language_only_when_asked(
    capture: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("node: n\n")
    table = modules_after(_read(capture, "-o", "table"))
    assert "rich.console" in table and loaded(table, "yaml", "pilotfish.query") == []
    configured = modules_after(_read(capture, "-o", "jsonl", "--config", str(config)))
    assert "yaml" in configured and loaded(configured, "rich") == []
    filtered = modules_after(_read(capture, "-o", "jsonl", "--filter", "http"))
    assert "pilotfish.query" in filtered and loaded(filtered, "rich", "yaml") == []


def test_version_loads_nothing_but_the_command_line() -> None:
    modules = modules_after("from pilotfish.cli import main\nmain(['version'])")
    assert loaded(modules, "pilotfish") == ["pilotfish", "pilotfish.cli"]
    assert loaded(modules, "msgspec") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (opens a packet socket)")
def test_capture_buffer_sizes_the_ring() -> None:
    done = run("capture", "--list-backends", "-i", "lo", "-B", "16")
    assert done.returncode == 0, done.stderr
    assert "TPACKET_V3 ring 8x2048 KiB on lo" in done.stdout


def test_capture_buffer_must_be_positive() -> None:
    done = run("capture", "-i", "lo", "-B", "0")
    assert done.returncode == 2
    assert "--buffer" in done.stderr
