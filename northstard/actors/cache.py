"""The cache actor: the current snapshot (with its ETag) and closed history chunks.

Other tasks talk to it only through its request channel (``CacheClient``);
it answers on a one-shot reply channel.

History is cached per *chunk*: ``CHUNK_BUCKETS`` buckets of one resolution,
aligned to multiples of their width (1m: one UTC hour, 5m: 5 h, 1h: 60 h,
1d: 60 days). The dashboard asks for ranges relative to now, so no two of its
requests are equal, but they share chunks. A chunk is cached only once it is
*final*: it ends at or before the bucket of the newest change the cache has
seen (changes reach the cache after the writer committed them, in order), so
its rows can no longer change. The open chunk at the end of a range is always
read from SQLite (at most ``CHUNK_BUCKETS`` rows). A change older than that
frontier (a clock stepped back) drops the chunks it could touch and bumps
``generation``, so a read that started before it is not stored. With a bucket
retention (``keep_ms``, from ``[storage] keep_buckets_days``) a chunk that
starts before the retention cutoff is never served from memory: the writer
may be deleting its rows.

Bounds: the chunks held cost at most ``max_bytes`` (``[cache] history_bytes``,
default 8 MiB, counted with ``sys.getsizeof`` over the rows kept); past it the
least recently used chunks go; a chunk larger than the whole limit is not
kept. ``stats()`` counts hits (final chunks answered from memory) and misses
(chunks read from SQLite, the open one included).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import trio

from northstard.core.buckets import RESOLUTIONS, bucket_start
from northstard.core.change import Change, snapshot_message
from northstard.core.mergepatch import Doc

__all__ = [
    "CHUNK_BUCKETS",
    "Cache",
    "CacheClient",
    "CacheRequest",
    "Chunk",
    "Current",
    "HistoryPlan",
    "Row",
    "SizedChunk",
    "chunk_bytes",
    "chunk_starts",
    "chunk_width",
    "run_cache",
]

CHUNK_BUCKETS = 60
_KEY_BYTES = sys.getsizeof((("1m", 0),)) + sys.getsizeof(0)  # the LRU key and its entry

Row = tuple[int, bytes]  # (start_ms, the bucket as /api/pnl/history sends it, JSON)
Chunk = tuple[Row, ...]
SizedChunk = tuple[Chunk, int]  # a chunk and its chunk_bytes, counted in the reading thread


def chunk_width(resolution: str) -> int:
    return RESOLUTIONS[resolution] * CHUNK_BUCKETS


def chunk_starts(resolution: str, from_ms: int, to_ms: int) -> range:
    """The starts of the chunks that hold buckets starting in [from_ms, to_ms)."""
    width = chunk_width(resolution)
    return range(from_ms - from_ms % width, to_ms, width)


def chunk_bytes(chunk: Chunk) -> int:
    """What holding ``chunk`` costs, as ``sys.getsizeof`` counts the objects kept."""
    rows = sum(sys.getsizeof(row) + sys.getsizeof(row[0]) + sys.getsizeof(row[1]) for row in chunk)
    return _KEY_BYTES + sys.getsizeof(chunk) + rows


@dataclass(frozen=True)
class Current:
    epoch: str
    seq: int
    etag: str
    message: str


@dataclass(frozen=True)
class HistoryPlan:
    """What the cache holds of a range, and what must be read from SQLite.

    ``cached``: the final chunks it held; ``read``: the other chunk starts
    (read whole, so that final ones can be stored); ``final_end``: chunks
    ending at or before it may be stored; ``generation``: hand it back to
    ``history_fill``.
    """

    resolution: str
    cached: Mapping[int, Chunk]
    read: tuple[int, ...]
    final_end: int
    generation: int


@dataclass(frozen=True)
class CacheRequest:
    op: str
    args: tuple[object, ...]
    reply: trio.MemorySendChannel[object]


class Cache:
    """The cache's state; only ``run_cache`` touches it."""

    def __init__(self, max_bytes: int, keep_ms: int = 0) -> None:
        self.current: Current | None = None
        self.ready = trio.Event()  # set once there is a current snapshot to serve
        self.max_bytes = max_bytes
        self.keep_ms = keep_ms
        self.chunks: OrderedDict[tuple[str, int], tuple[Chunk, int]] = OrderedDict()
        self.bytes = 0
        self.latest_ms = 0
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f"<Cache chunks={len(self.chunks)} bytes={self.bytes}/{self.max_bytes} "
                f"hits={self.hits} misses={self.misses}>")

    def reset(self, epoch: str, seq: int, ts_ms: int, doc: Doc) -> None:
        self.current = Current(epoch, seq, f'"{epoch}:{seq}"', snapshot_message(epoch, seq, ts_ms, doc))
        self.ready.set()

    def update(self, change: Change) -> None:
        self.current = Current(
            change.epoch, change.seq, f'"{change.epoch}:{change.seq}"', change.snapshot_message
        )
        self.ready.set()
        if change.ts_ms < self.latest_ms:
            self._forget_after(change.ts_ms)
        self.latest_ms = max(self.latest_ms, change.ts_ms)

    def _forget_after(self, ts_ms: int) -> None:
        """A change behind the frontier: drop every chunk it could touch."""
        self.generation += 1
        for key in list(self.chunks):
            resolution, start = key
            if start + chunk_width(resolution) > bucket_start(ts_ms, resolution):
                self._drop(key)

    def final_end(self, resolution: str) -> int:
        return bucket_start(self.latest_ms, resolution)

    def _cacheable(self, resolution: str, start: int, final_end: int) -> bool:
        retained = self.keep_ms <= 0 or start >= self.latest_ms - self.keep_ms
        return retained and start + chunk_width(resolution) <= final_end

    def plan(self, resolution: str, from_ms: int, to_ms: int) -> HistoryPlan:
        final_end = self.final_end(resolution)
        cached: dict[int, Chunk] = {}
        read: list[int] = []
        for start in chunk_starts(resolution, from_ms, to_ms):
            held = self.chunks.get((resolution, start))
            if held is not None and self._cacheable(resolution, start, final_end):
                self.chunks.move_to_end((resolution, start))
                cached[start] = held[0]
                self.hits += 1
            else:
                read.append(start)
                self.misses += 1
        return HistoryPlan(resolution, cached, tuple(read), final_end, self.generation)

    def fill(self, plan: HistoryPlan, chunks: Mapping[int, SizedChunk]) -> int:
        """Keep the final chunks of ``chunks`` (read for ``plan``); how many were kept."""
        if plan.generation != self.generation or self.max_bytes <= 0:
            return 0
        kept = 0
        for start, (chunk, size) in chunks.items():
            if not self._cacheable(plan.resolution, start, plan.final_end) or size > self.max_bytes:
                continue
            key = (plan.resolution, start)
            self._drop(key)
            self.chunks[key] = (chunk, size)
            self.bytes += size
            kept += 1
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self.chunks)))
        return kept

    def _drop(self, key: tuple[str, int]) -> None:
        held = self.chunks.pop(key, None)
        if held is not None:
            self.bytes -= held[1]

    def stats(self) -> dict[str, object]:
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / total, 4) if total else None,
            "history_entries": len(self.chunks),
            "history_bytes": self.bytes,
            "history_max_bytes": self.max_bytes,
            "current": self.current.etag if self.current else None,
        }

    def answer(self, op: str, args: tuple[Any, ...]) -> Any:
        if op == "current":
            return self.current
        if op == "history_plan":
            return self.plan(*args)
        if op == "history_fill":
            return self.fill(*args)
        if op == "stats":
            return self.stats()
        raise ValueError(f"unknown cache request {op!r}")


class CacheClient:
    """Asks the cache actor; every call is one request and one reply."""

    def __init__(self, send: trio.MemorySendChannel[CacheRequest]) -> None:
        self._send = send

    async def _ask(self, op: str, *args: Any) -> Any:
        reply_send, reply_receive = trio.open_memory_channel[object](1)
        async with reply_receive:
            await self._send.send(CacheRequest(op, args, reply_send))
            return await reply_receive.receive()

    async def current(self) -> Current | None:
        result: Current | None = await self._ask("current")
        return result

    async def history_plan(self, resolution: str, from_ms: int, to_ms: int) -> HistoryPlan:
        result: HistoryPlan = await self._ask("history_plan", resolution, from_ms, to_ms)
        return result

    async def history_fill(self, plan: HistoryPlan, chunks: Mapping[int, SizedChunk]) -> int:
        result: int = await self._ask("history_fill", plan, chunks)
        return result

    async def stats(self) -> dict[str, object]:
        result: dict[str, object] = await self._ask("stats")
        return result


async def _serve(cache: Cache, requests: trio.MemoryReceiveChannel[CacheRequest]) -> None:
    async for request in requests:
        async with request.reply:
            with suppress(trio.BrokenResourceError):  # the asker went away
                await request.reply.send(cache.answer(request.op, request.args))


async def run_cache(
    cache: Cache,
    changes: trio.MemoryReceiveChannel[Change],
    requests: trio.MemoryReceiveChannel[CacheRequest],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep the cache current and answer requests; ends when the writer's channel closes."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, cache, requests)
        task_status.started()
        async for change in changes:
            cache.update(change)
        nursery.cancel_scope.cancel()
