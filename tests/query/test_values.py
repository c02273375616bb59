"""Run-time value semantics: int64 arithmetic, durations, timestamps, conversions, headers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.query import values as v


def test_int_division_truncates_like_cel() -> None:
    assert v.int_div(7, 2) == 3
    assert v.int_div(-7, 2) == -3
    assert v.int_mod(-7, 2) == -1
    assert v.int_mod(7, -2) == 1
    with pytest.raises(v.EvalError):
        v.int_div(1, 0)
    with pytest.raises(v.EvalError):
        v.int_mod(1, 0)
    with pytest.raises(v.EvalError):
        v.int_div(v.INT64_MIN, -1)


def test_double_division_is_ieee() -> None:
    assert v.double_div(1.0, 0.0) == math.inf
    assert v.double_div(-1.0, 0.0) == -math.inf
    assert v.double_div(1.0, -0.0) == -math.inf
    assert math.isnan(v.double_div(0.0, 0.0))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("-1.5s", -1.5),
        ("250ms", 0.25),
        ("10us", 1e-5),
        ("3µs", 3e-6),
        ("7ns", 7e-9),
        ("0", 0.0),
        ("+2h", 7200.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert v.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "m", "1h 2m", "-", "1" * 70 + "s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(v.EvalError):
        v.parse_duration(text)


def test_timestamps() -> None:
    assert v.parse_timestamp("2026-01-01T00:00:00Z") == 1767225600.0
    assert v.parse_timestamp("2026-01-01T01:00:00+01:00") == 1767225600.0
    for bad in ("2026-01-01T00:00:00", "yesterday", "x" * 100):
        with pytest.raises(v.EvalError):
            v.parse_timestamp(bad)


def test_conversions() -> None:
    assert v.to_int("-12") == -12 and v.to_int(2.9) == 2 and v.to_int(-2.9) == -2
    assert v.to_double("1.5") == 1.5 and v.to_double(2) == 2.0
    assert v.to_string(True) == "true" and v.to_string(3) == "3"
    for bad in (" 1", "1_0", "", True, math.nan, 1e30, [1]):
        with pytest.raises(v.EvalError):
            v.to_int(bad)
    for bad_double in ("x", True, None):
        with pytest.raises(v.EvalError):
            v.to_double(bad_double)
    with pytest.raises(v.EvalError):
        v.to_string(None)


def test_ascii_case_only() -> None:
    assert v.lower_ascii("ÀBc") == "Àbc"
    assert v.upper_ascii("àbC") == "àBC"


def test_headers_exact_then_case_insensitive_then_empty() -> None:
    headers = {"Content-Type": "a", "content-type": "b"}
    assert v.header(headers, "content-type") == "b"
    assert v.header(headers, "CONTENT-TYPE") == "a"
    assert v.header(headers, "accept") == ""
    assert v.has_header(headers, "Content-TYPE") and not v.has_header(headers, "x")


def test_dyn_equality_and_arithmetic() -> None:
    assert v.dyn_equal(1, 1.0) and not v.dyn_equal(True, 1) and not v.dyn_equal("1", 1)
    assert v.dyn_arith("+", "a", "b") == "ab"
    assert v.dyn_arith("/", -7, 2) == -3
    assert v.dyn_arith("*", 1.5, 2.0) == 3.0
    for a, b in ((1, 1.0), ("a", 1), (None, 1)):
        with pytest.raises(v.EvalError):
            v.dyn_arith("+", a, b)
    with pytest.raises(v.EvalError):
        v.dyn_arith("%", 1.0, 2.0)


def test_patterns_are_bounded() -> None:
    assert v.compile_pattern("^a+").search("aa")
    with pytest.raises(v.EvalError):
        v.compile_pattern("(")
    with pytest.raises(v.EvalError):
        v.compile_pattern("a" * (v.MAX_PATTERN + 1))


@given(st.integers(v.INT64_MIN, v.INT64_MAX), st.integers(v.INT64_MIN, v.INT64_MAX).filter(bool))
def test_int_div_mod_identity(a: int, b: int) -> None:
    try:
        q = v.int_div(a, b)
    except v.EvalError:
        assert (a, b) == (v.INT64_MIN, -1)
        return
    assert q * b + v.int_mod(a, b) == a
    assert abs(v.int_mod(a, b)) < abs(b)


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(("h", "m", "s", "ms", "us", "ns"))),
        min_size=1,
        max_size=4,
    )
)
def test_duration_sums_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    assert v.parse_duration(text) == pytest.approx(sum(n * scale[u] for n, u in parts))
