"""The `pilotfish` command as a user runs it: output formats, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
