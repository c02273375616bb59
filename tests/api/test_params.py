"""Request parameters: limits clamped, cursors and buckets checked, unknown names refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.api.params import (
    MAX_LIMIT,
    MAX_VALUE,
    ApiError,
    check_known,
    check_value,
    parse_bucket,
    parse_cursor,
    parse_flag,
    parse_group_by,
    parse_limit,
    parse_query,
)


def test_limits_default_and_clamp() -> None:
    assert parse_limit(None) == parse_limit("") == 100
    assert parse_limit("20") == 20
    assert parse_limit("0") == parse_limit("-5") == 1
    assert parse_limit("99999999999") == MAX_LIMIT


@pytest.mark.parametrize("raw", ["lots", "1.5", "1e3", "٣", " ", "--1", "9" * 31])
def test_non_integer_limits_are_400(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_limit(raw)
    assert info.value.status == 400 and info.value.body["parameter"] == "limit"


def test_cursors() -> None:
    assert parse_cursor("before", None) is None
    assert parse_cursor("before", "12") == "12"
    assert parse_cursor("before", "h.ab12-3") == "h.ab12-3"  # backends check their own kind
    for bad in ("", "a b", "1/2", "1" * 4097, "١٢"):
        with pytest.raises(ApiError):
            parse_cursor("after", bad)


def test_buckets() -> None:
    assert parse_bucket(None) == 60
    assert parse_bucket("60") == 60 and parse_bucket("10s") == 10 and parse_bucket("1m") == 60
    assert parse_bucket("500ms") == 0.5 and parse_bucket("1h") == 3600
    for bad in ("0", "soon", "1d", "25h", "-1s", "0.0001"):
        with pytest.raises(ApiError):
            parse_bucket(bad)


def test_queries_report_the_column() -> None:
    assert parse_query("") == "" and parse_query("http") == "http"
    with pytest.raises(ApiError) as info:
        parse_query("http && stauts == 1")
    assert info.value.body["position"] == 8 and "stauts" in info.value.body["error"]


def test_group_by_and_unknown_parameters() -> None:
    assert parse_group_by(None) == "" and parse_group_by("protocol") == "protocol"
    with pytest.raises(ApiError) as info:
        parse_group_by("password")
    assert "protocol" in info.value.body["allowed"]
    check_known(["q", "limit"], {"q", "limit"})
    with pytest.raises(ApiError) as unknown:
        check_known(["q", "lmit"], {"q", "limit"})
    assert unknown.value.body["parameter"] == "lmit"
    with pytest.raises(ApiError):
        check_value("q", "x" * (MAX_VALUE + 1))


@given(st.text(max_size=40))
def test_limit_is_in_range_or_refused(raw: str) -> None:
    try:
        value = parse_limit(raw)
    except ApiError as exc:
        assert exc.status == 400
    else:
        assert 1 <= value <= MAX_LIMIT


@given(st.text(max_size=20))
def test_bucket_is_in_range_or_refused(raw: str) -> None:
    try:
        seconds = parse_bucket(raw)
    except ApiError as exc:
        assert exc.status == 400 and "bucket" in exc.body["error"]
    else:
        assert 0.001 <= seconds <= 86_400


@given(st.text(max_size=80))
def test_any_query_text_is_valid_or_a_positioned_400(text: str) -> None:
    try:
        assert parse_query(text) == text
    except ApiError as exc:
        assert exc.status == 400 and 0 <= exc.body["position"] <= len(text)


def test_flags() -> None:
    assert parse_flag("latency", None) is False and parse_flag("latency", "1") is True
    assert parse_flag("latency", "TRUE") is True and parse_flag("latency", "0") is False
    with pytest.raises(ApiError) as info:
        parse_flag("latency", "yes")
    assert info.value.body["parameter"] == "latency"
