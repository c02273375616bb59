"""`FederatedBackend`: the API's `Backend` protocol answered by asking workers.

Every query is sent to every available worker at once, with the filter pushed down (each
worker filters its own store), and the answers are merged here: entries by time with a
composite cursor (`hub.paging`), stats and service maps from summed counts and latency
histograms (`hub.merge`), PCAP exports interleaved by timestamp into one file, live
streams fanned in (`hub.live`, one upstream per distinct live query shared by the hub's
clients), metrics summed plus per worker and the hub's own.

A worker that fails or does not answer within its timeout is left out of that answer and
marked down (`hub.client`): later calls skip it at once until its backoff has passed, and
a background task probes down workers (and re-checks up ones every `health_interval`) so
/api/workers, /readyz and the metrics say who is missing.  No worker can hold up the
others' answers: each call is bounded by the client's timeouts.

Bounds: a page asks each worker for at most `limit` entries; answers are read up to
`max_bytes` each; a PCAP export downloads each worker's file to a temporary directory (at
most `export_limit` bytes each: a longer one is cut there, keeping its whole frames, and
counted in `exports_cut`) and streams the merged file from a spooled temporary file; live
streams are bounded per client by the hub's `LiveFeed` settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any, Final, TypeVar
from urllib.parse import quote

import msgspec

from pilotfish.api.live import LiveFeed, Subscription
from pilotfish.api.params import ApiError, parse_bucket
from pilotfish.hub.client import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, WorkerClient, WorkerUnavailable
from pilotfish.hub.live import FanIn
from pilotfish.hub.merge import merge_buckets, merge_maps, merge_pcaps, sum_trees
from pilotfish.hub.paging import MAX_WORKERS, Request, decode_cursor, merge_pages, worker_key
from pilotfish.model import Entry
from pilotfish.store.base import Bucket, Page, ServiceMap

log = logging.getLogger(__name__)

T = TypeVar("T")

EXPORT_MEMORY: Final = 8 * 1024 * 1024
EXPORT_LIMIT: Final = 1024 * 1024 * 1024
EXPORT_CHUNK: Final = 256 * 1024
PROBE_INTERVAL: Final = 0.5
HEALTH_INTERVAL: Final = 2.0


class FederatedBackend:
    """See the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        export_limit: int = EXPORT_LIMIT,
        feed: LiveFeed | None = None,
        probe_interval: float = PROBE_INTERVAL,
        health_interval: float = HEALTH_INTERVAL,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unique = list(dict.fromkeys(u.rstrip("/") for u in urls))
        if not unique:
            raise ValueError("a hub needs at least one worker URL")
        if len(unique) > MAX_WORKERS:
            raise ValueError(f"a hub federates at most {MAX_WORKERS} workers")
        for url in unique:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"worker URL must start with http:// or https:// ({url!r})")
        self.clients = [
            WorkerClient(
                u,
                timeout=timeout,
                max_bytes=max_bytes,
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                clock=clock,
            )
            for u in unique
        ]
        self.keys = [worker_key(w.url) for w in self.clients]
        self.feed = feed if feed is not None else LiveFeed()
        self.export_limit = export_limit
        self.probe_interval = probe_interval
        self.health_interval = health_interval
        self.backoff = (backoff_base, backoff_max)
        self.timeout = timeout
        self._clock = clock
        self._checked: dict[str, float] = {}
        self._fan_ins: dict[str, FanIn] = {}  # one per distinct live query
        self._prober: asyncio.Task[None] | None = None
        self.counters = {
            "calls": 0,
            "partial_answers": 0,
            "stream_reconnects": 0,
            "exports_cut": 0,
            "export_frames_skipped": 0,
        }

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self.feed.bind(asyncio.get_running_loop())
        await self._probe(self.clients)
        self._prober = asyncio.create_task(self._probe_loop())

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        for fan in list(self._fan_ins.values()):
            await fan.aclose()
        for w in self.clients:
            await w.close()

    def unavailable(self) -> list[str]:
        """URLs of the workers that are down now (for the notice on every answer)."""
        return [w.url for w in self.clients if w.state == "down"]

    async def _probe(self, workers: Sequence[WorkerClient]) -> None:
        now = self._clock()
        for w in workers:
            self._checked[w.url] = now
        await asyncio.gather(*(w.probe() for w in workers))

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            now = self._clock()
            due = [
                w
                for w in self.clients
                if w.available()
                and (w.state != "up" or now - self._checked.get(w.url, 0.0) >= self.health_interval)
            ]
            try:
                await self._probe(due)
            except Exception:  # keep probing whatever one round met
                log.exception("hub: probing workers failed")

    # --- fan-out -----------------------------------------------------------------------

    async def _fan(
        self,
        call: Callable[[WorkerClient], Awaitable[T]],
        workers: Sequence[WorkerClient] | None = None,
    ) -> dict[str, T]:
        """{worker key: answer} of the available workers that answered in time."""
        chosen = self.clients if workers is None else workers
        asked = [w for w in chosen if w.available()]
        results = await asyncio.gather(*(call(w) for w in asked), return_exceptions=True)
        out: dict[str, T] = {}
        for w, result in zip(asked, results, strict=True):
            if isinstance(result, WorkerUnavailable):
                continue
            if isinstance(result, (msgspec.ValidationError, ValueError)):
                w.mark_down(f"unusable answer: {result}")
                continue
            if isinstance(result, Exception):  # never let one worker spoil the answer
                log.warning("hub: %s failed: %r", w.url, result)
                w.mark_down(f"{type(result).__name__}: {result}")
                continue
            if isinstance(result, BaseException):
                raise result
            out[worker_key(w.url)] = result
        self.counters["calls"] += 1
        if len(out) < len(chosen):
            self.counters["partial_answers"] += 1
        return out

    @staticmethod
    async def _get(w: WorkerClient, path: str, params: dict[str, str], kind: type[T]) -> T:
        status, body = await w.get_json(path, params, kind)
        if status != 200:
            raise w.fail(f"{path} answered {status}: {str(body)[:100]}")
        result: T = body
        return result

    # --- queries -----------------------------------------------------------------------

    async def entries(self, query: str, limit: int, before: str | None, after: str | None) -> Page:
        try:
            request = Request(
                limit,
                None if before is None else decode_cursor(before),
                None if after is None else decode_cursor(after),
                self.keys,
            )
        except ValueError:
            name = "before" if before is not None else "after"
            raise ApiError(
                400, f"{name} must be a cursor returned by this API", parameter=name
            ) from None

        async def ask(w: WorkerClient) -> Page:
            params = {"q": query, "limit": str(limit)}
            b, a = request.cursors_for(worker_key(w.url))
            if b is not None:
                params["before"] = b
            if a is not None:
                params["after"] = a
            page = await self._get(w, "/api/entries", params, Page)
            if len(page.positions) != len(page.entries):
                raise ValueError("page without entry positions")
            return page

        return merge_pages(request, await self._fan(ask))

    async def entry(self, entry_id: str) -> Entry | None:
        async def ask(w: WorkerClient) -> Entry | None:
            status, body = await w.get_json(f"/api/entries/{quote(entry_id, safe='')}", None, Entry)
            if status == 404:
                return None
            if status != 200:
                raise w.fail(f"/api/entries/{{id}} answered {status}")
            found: Entry = body
            return found

        node = entry_id.rpartition("-")[0]
        owners = [w for w in self.clients if node and w.node == node]
        for workers in (owners, None) if owners else (None,):
            found = await self._fan(ask, workers)
            for key in self.keys:
                hit = found.get(key)
                if hit is not None:
                    return hit
        return None

    async def stats(
        self, query: str, bucket_s: float, group_by: str, latency: bool = False
    ) -> list[Bucket]:
        params = {
            "q": query,
            "bucket": bucket_param(bucket_s),
            "group_by": group_by,
            "latency": "1",
        }
        answers = await self._fan(lambda w: self._get(w, "/api/stats", params, list[Bucket]))
        return merge_buckets(answers.values(), latency)

    async def servicemap(self, query: str, latency: bool = False) -> ServiceMap:
        params = {"q": query, "latency": "1"}
        answers = await self._fan(lambda w: self._get(w, "/api/servicemap", params, ServiceMap))
        return merge_maps(answers.values(), latency)

    async def export_pcap(self, query: str) -> AsyncIterator[bytes]:
        with tempfile.TemporaryDirectory(prefix="pilotfish-hub-") as tmp:
            paths = {key: Path(tmp, f"{key}.pcap") for key in self.keys}

            async def fetch(w: WorkerClient) -> Path:
                path = paths[worker_key(w.url)]
                with open(path, "wb") as out:
                    if await w.download("/api/export.pcap", {"q": query}, out, self.export_limit):
                        self.counters["exports_cut"] += 1
                return path

            got = await self._fan(fetch)
            merged, counters = await asyncio.to_thread(
                _merge_to_file, [got[k] for k in self.keys if k in got]
            )
            self.counters["export_frames_skipped"] += counters["skipped_linktype"]
        try:
            while chunk := await asyncio.to_thread(merged.read, EXPORT_CHUNK):
                yield chunk
        finally:
            merged.close()

    async def subscribe(self, query: str) -> Subscription:
        sub = self.feed.subscribe(None, query)
        fan = self._fan_ins.get(query)
        if fan is None:
            fan = self._fan_ins[query] = FanIn(
                self.clients,
                query,
                open_timeout=self.timeout,
                backoff_base=self.backoff[0],
                backoff_max=self.backoff[1],
                on_idle=self._forget,
            )
            fan.start()
        fan.add(sub)
        return sub

    def _forget(self, fan: FanIn) -> None:
        if self._fan_ins.get(fan.query) is fan:
            del self._fan_ins[fan.query]
        self.counters["stream_reconnects"] += fan.counters["reconnects"]

    # --- state -------------------------------------------------------------------------

    async def metrics(self) -> dict[str, Any]:
        snapshots = await self._fan(lambda w: self._get(w, "/api/metrics", {}, dict[str, Any]))
        summed = sum_trees(snapshots.values())
        summed["websocket"] = {
            "clients": self.feed.clients,
            "dropped": self.feed.dropped(),
            "overflow": self.feed.overflow,
            "refused": self.feed.refused,
        }
        live_reconnects = sum(f.counters["reconnects"] for f in self._fan_ins.values())
        summed["hub"] = {
            **self.counters,
            "stream_reconnects": self.counters["stream_reconnects"] + live_reconnects,
            "workers": [
                {**w.describe(), "requests_total": w.requests_total, "metrics": snapshots.get(k)}
                for w, k in zip(self.clients, self.keys, strict=True)
            ],
        }
        return summed

    async def health(self) -> dict[str, Any]:
        up = [w for w in self.clients if w.state == "up"]
        return {
            "ready": bool(up),
            "node": "hub",
            "workers_up": len(up),
            "workers": len(self.clients),
            "unavailable": self.unavailable(),
            "clients": self.feed.clients,
        }

    async def workers(self) -> list[dict[str, Any]]:
        return [w.describe() for w in self.clients]


def bucket_param(bucket_s: float) -> str:
    """A bucket width as the API's parameter that workers parse back to the same float
    (so their buckets start exactly where one store's would)."""
    decimal = f"{bucket_s:.6f}".rstrip("0").rstrip(".")
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    in_units = (f"{bucket_s / f:.6f}".rstrip("0").rstrip(".") + u for u, f in units)
    for text in (repr(bucket_s), *in_units):
        try:
            if parse_bucket(text) == bucket_s:
                return text
        except ApiError:
            continue
    return decimal


def _merge_to_file(paths: list[Path]) -> tuple[IO[bytes], dict[str, int]]:
    out: Any = tempfile.SpooledTemporaryFile(max_size=EXPORT_MEMORY)  # noqa: SIM115
    try:
        counters = merge_pcaps(paths, out)
    except BaseException:
        out.close()
        raise
    if counters["skipped_linktype"] or counters["damaged_inputs"]:
        log.warning("hub: pcap export merged with losses: %s", counters)
    out.seek(0)
    result: IO[bytes] = out
    return result, counters
