"""One worker as the hub sees it: its URL, its health, and bounded HTTP calls to it.

`WorkerClient` wraps an `httpx.AsyncClient` with a per-request timeout (`timeout` seconds for
connecting and for each read) and an overall deadline per call, and reads at most
`max_bytes` of any answer, so a slow, dead or babbling worker costs the hub a bounded time
and memory.  Any failure (refused connection, timeout, 5xx, an answer too big or not JSON)
marks the worker down: it is then skipped (reported as unavailable at once, never waited
on) until its backoff has passed -- `backoff_base * 2**(failures-1)`, at most `backoff_max`
seconds -- when the next call or `probe()` tries it again.  A success marks it up.  4xx
answers are the worker's opinion of the request, not a failure (a 404 for an unknown id).

The clock is injectable (`clock`), so the backoff is testable exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import IO, Any, Final

import httpx
import msgspec

DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
BACKOFF_BASE: Final = 0.5
BACKOFF_MAX: Final = 30.0
_ERROR_TEXT: Final = 200


class WorkerUnavailable(Exception):
    """The worker is down (or in backoff) or failed this call."""


class WorkerClient:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._clock = clock
        self.node = ""  # the worker's node name, once it has answered /readyz
        self.state = "unknown"  # unknown | up | down
        self.failures = 0  # consecutive failures
        self.failures_total = 0
        self.requests_total = 0
        self.last_error = ""
        self.retry_at = 0.0
        self.latency_s = 0.0  # of the last successful call
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout), follow_redirects=False
        )

    @property
    def ws_url(self) -> str:
        scheme, rest = self.url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"

    def available(self) -> bool:
        """Up, unknown, or down with its backoff over (time to try again)."""
        return self.state != "down" or self._clock() >= self.retry_at

    def mark_up(self, latency_s: float) -> None:
        self.state = "up"
        self.failures = 0
        self.latency_s = latency_s

    def mark_down(self, error: str) -> None:
        self.failures += 1
        self.failures_total += 1
        self.state = "down"
        self.last_error = error[:_ERROR_TEXT]
        delay = min(self.backoff_max, self.backoff_base * 2 ** min(self.failures - 1, 30))
        self.retry_at = self._clock() + delay

    def describe(self) -> dict[str, Any]:
        """What /api/workers and /readyz say about this worker."""
        now = self._clock()
        return {
            "url": self.url,
            "node": self.node,
            "state": self.state,
            "up": self.state == "up",
            "failures": self.failures,
            "failures_total": self.failures_total,
            "last_error": self.last_error,
            "retry_in_s": round(max(0.0, self.retry_at - now), 3) if self.state == "down" else 0,
            "latency_ms": round(self.latency_s * 1000, 3),
        }

    async def get_json(
        self, path: str, params: dict[str, str] | None = None, kind: Any = Any
    ) -> tuple[int, Any]:
        """(status, JSON decoded as `kind`) of GET `path`.  A 4xx is returned (its body
        decoded as plain JSON); anything worse, or a 200 that is not a `kind`, raises."""
        async with self._request(path, params) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise self.fail(f"answer larger than {self.max_bytes} bytes")
            status = response.status_code
            try:
                return status, msgspec.json.decode(body, type=kind if status == 200 else Any)
            except msgspec.ValidationError as exc:
                raise self.fail(f"unexpected answer: {exc}") from None
            except msgspec.DecodeError as exc:
                raise self.fail(f"answer is not JSON: {exc}") from None

    async def download(self, path: str, params: dict[str, str], out: IO[bytes], limit: int) -> bool:
        """Write the body of GET `path` to `out`, at most `limit` bytes; True when it was
        cut there (the caller decides what a cut answer is worth; the worker is fine)."""
        size = 0
        async with self._request(path, params) as response:
            if response.status_code != 200:
                raise self.fail(f"{path} answered {response.status_code}")
            async for chunk in response.aiter_bytes():
                room = limit - size
                out.write(chunk[:room])
                size += min(len(chunk), room)
                if len(chunk) > room:
                    return True
        return False

    async def probe(self) -> bool:
        """Ask /readyz (unless in backoff); True when the worker is ready."""
        try:
            status, health = await self.get_json("/readyz")
        except WorkerUnavailable:
            return False
        if isinstance(health, dict) and isinstance(health.get("node"), str):
            self.node = health["node"]
        if status != 200:
            self.mark_down(f"/readyz answered {status}")
            return False
        return True

    @asynccontextmanager
    async def _request(
        self, path: str, params: dict[str, str] | None
    ) -> AsyncIterator[httpx.Response]:
        if not self.available():
            raise WorkerUnavailable(f"{self.url} is down ({self.last_error}); retrying later")
        self.requests_total += 1
        started = self._clock()
        try:
            async with asyncio.timeout(self.timeout * 4):
                async with self._http.stream("GET", path, params=params) as response:
                    if response.status_code >= 500:
                        raise self.fail(f"{path} answered {response.status_code}")
                    yield response
        except WorkerUnavailable:
            raise
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from None
        self.mark_up(self._clock() - started)

    def fail(self, error: str) -> WorkerUnavailable:
        """Mark the worker down for `error`; the exception to raise."""
        self.mark_down(error)
        return WorkerUnavailable(f"{self.url}: {error}")

    async def close(self) -> None:
        await self._http.aclose()
