"""Recordings shared by the `pilotfish read` end-to-end tests.

Each scenario's testbed is built once per test session, on first use, and torn down as soon
as its recording is written; the tests only read the files.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.scenario import (
    DnsCapture,
    HttpCapture,
    LoadCapture,
    record_dns,
    record_http,
    record_load,
)


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")


@pytest.fixture(scope="session")
def http_capture(tmp_path_factory: pytest.TempPathFactory) -> HttpCapture:
    _need_root()
    return record_http(tmp_path_factory.mktemp("read-http"))


@pytest.fixture(scope="session")
def http_capture_offloads(tmp_path_factory: pytest.TempPathFactory) -> HttpCapture:
    _need_root()
    return record_http(tmp_path_factory.mktemp("read-http-offloads"), offloads=True)


@pytest.fixture(scope="session")
def dns_capture(tmp_path_factory: pytest.TempPathFactory) -> DnsCapture:
    _need_root()
    return record_dns(tmp_path_factory.mktemp("read-dns"))


@pytest.fixture(scope="session")
def load_capture(tmp_path_factory: pytest.TempPathFactory) -> LoadCapture:
    _need_root()
    return record_load(tmp_path_factory.mktemp("read-load"))
