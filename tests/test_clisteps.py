"""clisteps: the steps the command run functions share, called directly."""

from __future__ import annotations

import pytest

from pilotfish.cli import CliError
from pilotfish.clisteps import check_backend, interfaces, output_format, query_matcher


def test_interfaces_are_split_on_commas_and_one_is_needed() -> None:
    assert interfaces(" eth0, lo ,") == ["eth0", "lo"]
    with pytest.raises(CliError, match="at least one interface"):
        interfaces(" , ")


def test_unknown_backend_and_format_are_usage_errors() -> None:
    check_backend("afpacket")
    with pytest.raises(CliError) as backend:
        check_backend("dpdk")
    assert backend.value.code == 2 and "'dpdk'" in str(backend.value)
    assert output_format("jsonl") == "jsonl"
    with pytest.raises(CliError, match="--format must be one of table, jsonl, json"):
        output_format("xml")


def test_filter_is_the_query_language_and_a_capture_filter_still_works(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert query_matcher("  ", "tcp") == (None, "tcp")
    query, bpf = query_matcher("http && status_code >= 500", "")
    assert query is not None and bpf == ""
    assert query_matcher("tcp port 80", "") == (None, "tcp port 80")
    assert "is a capture filter; use --bpf" in capsys.readouterr().err
    with pytest.raises(CliError, match="invalid filter"):
        query_matcher("status_code >=", "")
