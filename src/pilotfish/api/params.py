"""Request parameters of the API, parsed and checked before any backend call.

Pure functions over strings (no Starlette): each returns the clean value or raises
`ApiError`, which the app turns into a 4xx JSON answer `{"error": ..., ...}`.  Bounds:
limits are clamped to 1..`MAX_LIMIT`, cursors are tokens of at most `MAX_CURSOR` characters
from [0-9A-Za-z._~-] (each backend checks its own kind further), buckets lie between
1 ms and 24 h, parameter values longer than `MAX_VALUE` characters are refused, and a
parameter a route does not know is an error rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

from pilotfish.query import QueryError, compile_query
from pilotfish.store.schema import GROUPABLE

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
MAX_VALUE = 8192
_BUCKET = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_CURSOR = 4096
CURSOR_PATTERN = rf"[0-9A-Za-z._~-]{{1,{MAX_CURSOR}}}"
_CURSOR = re.compile(CURSOR_PATTERN)
_FLAGS = {"": False, "0": False, "false": False, "1": True, "true": True}


class ApiError(Exception):
    """A request the API refuses: HTTP `status` with the JSON `body`."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, **extra}


def check_known(names: Iterable[str], allowed: Collection[str]) -> None:
    """Refuse parameters the route does not take, and over-long values."""
    for name in names:
        if name not in allowed:
            raise ApiError(400, f"unknown parameter {name[:40]!r}", parameter=name[:40])


def check_value(name: str, value: str) -> str:
    if len(value) > MAX_VALUE:
        raise ApiError(400, f"{name} is longer than {MAX_VALUE} characters", parameter=name)
    return value


def parse_query(text: str) -> str:
    """Validate a filter; returns it unchanged (the backend compiles it again)."""
    if text.strip():
        try:
            compile_query(text)
        except QueryError as exc:
            raise ApiError(400, str(exc), position=exc.position) from exc
    return text


def parse_limit(raw: str | None) -> int:
    """A page size: whole number, clamped to 1..MAX_LIMIT."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 30:
        raise ApiError(400, f"limit must be a whole number (got {raw[:40]!r})", parameter="limit")
    return max(1, min(int(text), MAX_LIMIT))


def parse_cursor(name: str, raw: str | None) -> str | None:
    """A paging cursor as returned in `older`/`newer`, or None."""
    if raw is None:
        return None
    if _CURSOR.fullmatch(raw) is None:
        raise ApiError(400, f"{name} must be a cursor returned by this API", parameter=name)
    return raw


def parse_flag(name: str, raw: str | None) -> bool:
    """ "1"/"true" or "0"/"false" (absent: false)."""
    value = _FLAGS.get((raw or "").lower())
    if value is None:
        raise ApiError(400, f"{name} must be 0, 1, true or false", parameter=name)
    return value


def parse_bucket(raw: str | None) -> float:
    """ "60", "10s", "1m", "500ms", "1h" -> seconds (1 ms .. 24 h); default 60."""
    if raw is None or raw == "":
        return 60.0
    m = _BUCKET.fullmatch(raw.strip())
    if m is None:
        raise ApiError(
            400,
            f"bucket must look like 60, 10s, 1m or 500ms (got {raw[:40]!r})",
            parameter="bucket",
        )
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0.001 <= seconds <= 86_400:
        raise ApiError(400, "bucket must be between 1ms and 24h", parameter="bucket")
    return seconds


GROUPS = tuple(sorted(GROUPABLE))
"""Fields `/api/stats` can group by (the store's groupable columns)."""


def parse_group_by(raw: str | None) -> str:
    value = raw or ""
    if value and value not in GROUPABLE:
        raise ApiError(
            400, f"cannot group by {value[:40]!r}", parameter="group_by", allowed=list(GROUPS)
        )
    return value
