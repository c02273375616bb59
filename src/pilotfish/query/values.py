"""Run-time semantics of query values: CEL int64 arithmetic, durations, timestamps.

Timestamps are float epoch seconds and durations float seconds, so they compare and add
with plain float arithmetic.  Int arithmetic follows CEL: results outside int64 are errors,
`/` truncates toward zero and `%` takes the dividend's sign; double division by zero gives
inf/NaN as in IEEE.  Any value that cannot be computed raises `EvalError`; the predicate
turns it into "no match" (with CEL's `&&`/`||` absorption).
Limits: duration and timestamp texts longer than 64 characters are refused; regex patterns
use Python's `re` (close to RE2 for common patterns, but backtracking) and are capped at
`MAX_PATTERN` characters.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Final

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_PATTERN: Final = 1024
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DECIMAL: Final = re.compile(r"[+-]?[0-9]+")
_MAX_TEXT: Final = 64


class EvalError(Exception):
    """A value could not be computed (overflow, division by zero, bad conversion, ...)."""


ERRORS: Final = (
    EvalError,
    TypeError,
    ValueError,
    ZeroDivisionError,
    OverflowError,
    KeyError,
    IndexError,
)
"""Exceptions that mean "this expression has no value for this entry"."""


def check_int(value: int) -> int:
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise EvalError("integer overflow")


def int_div(a: int, b: int) -> int:
    if b == 0:
        raise EvalError("division by zero")
    q = abs(a) // abs(b)
    return check_int(q if (a < 0) == (b < 0) else -q)


def int_mod(a: int, b: int) -> int:
    if b == 0:
        raise EvalError("modulus by zero")
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


def double_div(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def parse_duration(text: str) -> float:
    """Go/CEL duration text ("1h30m", "-1.5s", "250ms", "0") -> seconds."""
    if len(text) > _MAX_TEXT:
        raise EvalError("duration text too long")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    total, at = 0.0, 0
    while at < len(body):
        part = _DURATION_PART.match(body, at)
        if part is None:
            raise EvalError(f"invalid duration {text!r}")
        total += float(part.group(1)) * _UNITS[part.group(2)]
        at = part.end()
    if at == 0:
        raise EvalError(f"invalid duration {text!r}")
    return -total if text.startswith("-") else total


def parse_timestamp(text: str) -> float:
    """RFC 3339 text with a zone ("2026-01-01T00:00:00Z") -> epoch seconds."""
    if len(text) > _MAX_TEXT:
        raise EvalError("timestamp text too long")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EvalError(f"invalid timestamp {text!r}") from None
    if moment.tzinfo is None:
        raise EvalError(f"timestamp {text!r} has no time zone")
    return moment.timestamp()


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise EvalError("int() of a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise EvalError("int() of a non-finite double")
        return check_int(int(value))
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return check_int(int(value))
    raise EvalError(f"int() cannot convert {value!r}")


def to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise EvalError("double() of a bool")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise EvalError(f"double() cannot convert {value!r}") from None
    raise EvalError(f"double() cannot convert {value!r}")


def to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise EvalError(f"string() cannot convert {value!r}")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN:
        raise EvalError(f"regular expression longer than {MAX_PATTERN} characters")
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as err:
        raise EvalError(f"invalid regular expression: {err}") from None


def lower_ascii(text: str) -> str:
    return text.translate(_LOWER)


def upper_ascii(text: str) -> str:
    return text.translate(_UPPER)


_LOWER: Final = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_UPPER: Final = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def header(headers: Any, key: str) -> str:
    """A header value: exact key, then case-insensitive; "" when absent."""
    value = headers.get(key)
    if value is not None:
        return str(value)
    folded = key.lower()
    for name, candidate in headers.items():
        if name.lower() == folded:
            return str(candidate)
    return ""


def has_header(headers: Any, key: str) -> bool:
    if key in headers:
        return True
    folded = key.lower()
    return any(name.lower() == folded for name in headers)


def dyn_equal(a: Any, b: Any) -> bool:
    """CEL equality for run-time typed values: bools never equal numbers."""
    if (type(a) is bool) != (type(b) is bool):
        return False
    return bool(a == b)


def dyn_arith(op: str, a: Any, b: Any) -> Any:
    """`a op b` when a side is dyn: only same-kind numbers, string or list `+`."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _INT_OPS[op](a, b)
    if ta is float and tb is float and op != "%":
        return _DOUBLE_OPS[op](a, b)
    if op == "+" and ta is tb and ta in (str, list):
        return a + b
    raise EvalError(f"no overload for {op} on {ta.__name__} and {tb.__name__}")


_INT_OPS: Final = {
    "+": lambda a, b: check_int(a + b),
    "-": lambda a, b: check_int(a - b),
    "*": lambda a, b: check_int(a * b),
    "/": int_div,
    "%": int_mod,
}
_DOUBLE_OPS: Final = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": double_div,
}
INT_OPS: Final = _INT_OPS
DOUBLE_OPS: Final = _DOUBLE_OPS
