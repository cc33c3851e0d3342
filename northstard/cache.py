"""The cache actor: the current snapshot (with its ETag) and recent history answers.

Other tasks talk to it only through its request channel (``CacheClient``);
it answers on a one-shot reply channel. History answers are kept until a
change lands in a bucket they cover; hits and misses are counted.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import trio

from .buckets import bucket_start
from .change import Change, snapshot_message
from .mergepatch import Doc

__all__ = ["Cache", "CacheClient", "Current", "run_cache"]

HISTORY_ENTRIES = 256


@dataclass(frozen=True)
class Current:
    epoch: str
    seq: int
    etag: str
    message: str


@dataclass(frozen=True)
class _Request:
    op: str
    args: tuple[Any, ...]
    reply: trio.MemorySendChannel[Any]


class Cache:
    """The cache's state; only ``run_cache`` touches it."""

    def __init__(self) -> None:
        self.current: Current | None = None
        self.history: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def reset(self, epoch: str, seq: int, ts_ms: int, doc: Doc) -> None:
        self.current = Current(epoch, seq, f'"{epoch}:{seq}"', snapshot_message(epoch, seq, ts_ms, doc))

    def update(self, change: Change) -> None:
        self.current = Current(
            change.epoch, change.seq, f'"{change.epoch}:{change.seq}"', change.snapshot_message
        )
        for key in list(self.history):
            resolution, _, to_ms = key
            if to_ms > bucket_start(change.ts_ms, resolution):
                del self.history[key]

    def get_history(self, key: tuple[str, int, int]) -> Any:
        if key in self.history:
            self.hits += 1
            self.history.move_to_end(key)
            return self.history[key]
        self.misses += 1
        return None

    def put_history(self, key: tuple[str, int, int], value: Any) -> None:
        self.history[key] = value
        while len(self.history) > HISTORY_ENTRIES:
            self.history.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / total, 4) if total else None,
            "history_entries": len(self.history),
            "current": self.current.etag if self.current else None,
        }

    def answer(self, op: str, args: tuple[Any, ...]) -> Any:
        if op == "current":
            return self.current
        if op == "history_get":
            return self.get_history(args[0])
        if op == "history_put":
            self.put_history(args[0], args[1])
            return None
        if op == "stats":
            return self.stats()
        raise ValueError(f"unknown cache request {op!r}")


class CacheClient:
    """Asks the cache actor; every call is one request and one reply."""

    def __init__(self, send: trio.MemorySendChannel[_Request]) -> None:
        self._send = send

    async def _ask(self, op: str, *args: Any) -> Any:
        reply_send, reply_receive = trio.open_memory_channel[Any](1)
        async with reply_receive:
            await self._send.send(_Request(op, args, reply_send))
            return await reply_receive.receive()

    async def current(self) -> Current | None:
        result: Current | None = await self._ask("current")
        return result

    async def history_get(self, key: tuple[str, int, int]) -> Any:
        return await self._ask("history_get", key)

    async def history_put(self, key: tuple[str, int, int], value: Any) -> None:
        await self._ask("history_put", key, value)

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._ask("stats")
        return result


async def _serve(cache: Cache, requests: trio.MemoryReceiveChannel[_Request]) -> None:
    async for request in requests:
        async with request.reply:
            with suppress(trio.BrokenResourceError):  # the asker went away
                await request.reply.send(cache.answer(request.op, request.args))


async def run_cache(
    cache: Cache,
    changes: trio.MemoryReceiveChannel[Change],
    requests: trio.MemoryReceiveChannel[_Request],
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
