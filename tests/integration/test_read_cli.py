"""The `pilotfish read` command as a user meets it, on the real HTTP and DNS recordings.

Exit codes and messages for files that cannot be read, the query filter (`--filter`) and the
capture filter (`--bpf`), the three output formats, and the rule that stdout carries nothing
but entries while the run summary and errors go to stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scenario import (
    API_PORT,
    ROOT_ONLY,
    DnsCapture,
    HttpCapture,
    content_key,
    entries,
    read,
)

pytestmark = [pytest.mark.integration, ROOT_ONLY]


@pytest.fixture(scope="module")
def everything(http_capture: HttpCapture) -> list[dict[str, Any]]:
    return entries(http_capture.path, "-q")


def refused(path: Path | str, *args: str) -> str:
    """Run a read that must fail with exit 2; returns its one-line error."""
    done = read(path, "-q", *args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pilotfish: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# --- files that cannot be read ------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    message = refused(path)
    assert message.startswith(f"pilotfish: {path}: ")
    assert message.endswith("No such file or directory")


def test_directory(tmp_path: Path) -> None:
    message = refused(tmp_path)
    assert message.startswith(f"pilotfish: {tmp_path}: ")
    assert message.endswith("Is a directory")


def test_a_file_that_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    message = refused(path)
    assert str(path) in message and "neither pcap nor pcapng" in message


def test_an_empty_file_has_no_entries(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    assert entries(path, "-q") == []
    done = read(path, "--format", "json", "-q")
    assert done.returncode == 0 and json.loads(done.stdout) == []


# --- query filter ------------------------------------------------------------------------------


def test_filter_on_status_keeps_only_errors(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    query = "http && status_code >= 400"
    done = read(http_capture.path, "--filter", query)
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    want = [d for d in everything if d["status"] >= 400]
    assert [d["path"] for d in want] == ["/missing", "/nope"]
    assert [content_key(d) for d in got] == [content_key(d) for d in want]
    assert f"{len(want)} entries matched the filter" in done.stderr


def test_filter_on_method_and_path(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    query = 'method == "GET" && path.startsWith("/gzip") && dst.port == 8080'
    got = entries(http_capture.path, "-q", "--filter", query)
    assert [d["path"] for d in got] == ["/gzip", "/gzip?accept=1"]
    assert entries(http_capture.path, "-q", "--filter", "dns") == []
    assert len(entries(http_capture.path, "-q", "--filter", "http")) == len(everything)


def test_filter_on_dns_answers(dns_capture: DnsCapture) -> None:
    got = entries(dns_capture.path, "-q", "--filter", 'dns && dns_rcode != "NOERROR"')
    assert {d["status"] for d in got} == {"NXDOMAIN"} and len(got) == 2


@pytest.mark.parametrize(
    ("query", "column"),
    [
        ("http && stauts_code >= 400", 8),
        ("http && status_code >= ", 23),
        ('method == "GET" &&& path == "/"', 18),
    ],
)
def test_invalid_filter_names_the_column(
    http_capture: HttpCapture, query: str, column: int
) -> None:
    message = refused(http_capture.path, "--filter", query)
    assert message.startswith("pilotfish: invalid filter: ")
    assert message.endswith(f"at column {column}")


# --- capture filter ---------------------------------------------------------------------------


def test_bpf_keeps_only_the_api_traffic(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    got = entries(http_capture.path, "-q", "--bpf", f"tcp port {API_PORT}")
    want = [d for d in everything if d["dst"]["port"] == API_PORT]
    assert len(want) == 7
    assert [content_key(d) for d in got] == [content_key(d) for d in want]
    assert all(d["dst"]["ip"] == http_capture.api for d in got)


def test_bpf_and_filter_together(http_capture: HttpCapture) -> None:
    got = entries(http_capture.path, "-q", "--bpf", "tcp port 80", "--filter", "status_code >= 300")
    assert [(d["path"], d["status"]) for d in got] == [("/missing", 404), ("/redirect", 301)]


def test_a_capture_filter_given_as_query_is_taken_with_a_note(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    done = read(http_capture.path, "--filter", "tcp port 80")
    assert done.returncode == 0
    assert "use --bpf" in done.stderr
    assert len(done.stdout.splitlines()) == sum(d["dst"]["port"] == 80 for d in everything)


def test_invalid_bpf(http_capture: HttpCapture) -> None:
    message = refused(http_capture.path, "--bpf", "tcp prot 80")
    assert message.startswith("pilotfish: invalid capture filter 'tcp prot 80'")


# --- output formats and streams ----------------------------------------------------------------


def test_json_is_one_array_of_the_same_entries(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    done = read(http_capture.path, "-q", "--format", "json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == everything


def test_table_has_a_header_and_one_line_per_entry(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    done = read(http_capture.path, "-q", "--format", "table")
    assert done.returncode == 0
    head, *rows = done.stdout.splitlines()
    assert head.split()[:3] == ["TIME", "PROTO", "SOURCE"]
    assert len(rows) == len(everything)
    for row, d in zip(rows, everything, strict=True):
        assert row.split()[1] == "http"
        assert row.endswith(f"{d['method']} {d['path']}")
        assert f"{d['src']['ip']}:{d['src']['port']}" in row
        assert str(d["status"]) in row


def test_summary_goes_to_stderr_and_quiet_silences_it(
    http_capture: HttpCapture, everything: list[dict[str, Any]]
) -> None:
    done = read(http_capture.path)
    assert done.returncode == 0
    assert [json.loads(line) for line in done.stdout.splitlines()] == everything
    first = done.stderr.splitlines()[0]
    assert first.startswith("pilotfish: ") and f"-> {len(everything)} entries (http" in first
    assert read(http_capture.path, "-q").stderr == ""


def test_node_names_the_entry_ids(http_capture: HttpCapture) -> None:
    got = entries(http_capture.path, "-q", "--node", "worker-7")
    assert got and all(d["id"].startswith("worker-7-") and d["node"] == "worker-7" for d in got)


def test_unknown_format_is_a_usage_error(http_capture: HttpCapture) -> None:
    message = refused(http_capture.path, "--format", "xml")
    assert "--format must be one of table, jsonl, json" in message


def test_a_reader_that_stops_early_is_no_error(http_capture: HttpCapture) -> None:
    argv = [sys.executable, "-m", "pilotfish", "read", str(http_capture.path), "-o", "jsonl"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        json.loads(proc.stdout.readline())
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert "Traceback" not in err
    assert code == 0
