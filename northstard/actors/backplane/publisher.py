"""The core's backplane publisher: every committed change into a Redis Stream.

It takes the writer's committed changes on its own channel and never blocks
the writer: a collector drains that channel at once and keeps at most
``maxlen`` changes not yet sent (older ones are dropped from memory: they are
in SQLite). While Redis answers, each batch goes in one MULTI: one ``XADD``
per change (``MAXLEN ~ maxlen``) and the ``current`` hash (snapshot, epoch,
seq), so the two always agree. A liveness key is rewritten every heartbeat.

Redis down: the core keeps serving locally; the failure is logged once (and
the return once), ``unpublished`` counts the committed changes Redis lacks.
On return the publisher reads Redis's ``current`` position and **republishes
the missing changes from SQLite**, so the stream has no gap; when it cannot
(Redis lost its data, another epoch, or more than ``maxlen`` missing) it
writes a snapshot entry instead, and every edge resyncs from it.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import structlog
import trio
from coredis.tokens import PureToken

from northstard.actors.backplane.client import Redis, open_redis, redis_failure
from northstard.core.backplane.settings import BackplaneSettings
from northstard.core.backplane.wire import Head, current_fields, delta_fields, parse_current, snapshot_fields
from northstard.core.change import Change
from northstard.status.backplane import PublisherStatus
from northstard.store.sqlite import open_reader

__all__ = ["Outbox", "run_backplane"]

log = structlog.get_logger("northstard.backplane")
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 5.0
SHUTDOWN_FLUSH_S = 2.0

Fields = dict[str, str]


class Pending(NamedTuple):
    """What the stream needs of a committed change: its position and its patch's JSON."""

    epoch: str
    seq: int
    prev: int
    ts_ms: int
    patch_json: str


@dataclass
class Outbox:
    """Committed changes not yet in Redis: the newest ``maxlen`` of them, and the head.

    Kept across restarts of the actor (as the writer's state is). Bound: ``maxlen``
    changes, each its patch's JSON (not its records: a change of thousands of records
    holds no more here than its patch); past it the oldest leave memory (a republish
    reads them from SQLite).
    """

    head: Head
    maxlen: int
    pending: deque[Pending] = field(default_factory=deque)
    changed: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)

    def add(self, change: Change) -> None:
        self.pending.append(Pending(change.epoch, change.seq, change.prev, change.ts_ms,
                                    change.patch_json))
        if len(self.pending) > self.maxlen:
            self.pending.popleft()  # still in SQLite: a republish reads it from there
        self.head = Head.of(change)
        self.changed.set()

    def take(self) -> list[Pending]:
        taken = list(self.pending)
        self.pending.clear()
        self.changed = trio.Event()
        return taken


def _now_ms() -> int:
    return int(time.time() * 1000)


def _contiguous(at: tuple[str, int] | None, batch: list[Pending]) -> bool:
    if at is None or not batch:
        return False
    epoch, seq = at
    for change in batch:
        if change.epoch != epoch or change.prev != seq:
            return False
        seq = change.seq
    return True


def _read_deltas(db_path: Path, epoch: str, after: int, upto: int) -> list[tuple[int, int, int, str]]:
    """Blocking: the persisted deltas (seq, prev, ts_ms, patch) of ``epoch`` in (after, upto]."""
    with closing(open_reader(db_path)) as conn:
        return list(conn.execute(
            "SELECT seq, prev, ts_ms, patch FROM deltas WHERE epoch = ? AND seq > ? AND seq <= ?"
            " ORDER BY seq", (epoch, after, upto)))


async def _refill(redis: Redis, settings: BackplaneSettings, head: Head, db_path: Path) -> list[Fields]:
    """The entries that bring Redis from what it holds to ``head``: the deltas from SQLite, or a
    snapshot entry when they cannot be given whole."""
    held = parse_current(await redis.hgetall(settings.current_key))
    at = _now_ms()
    if held is not None and held.epoch == head.epoch and held.seq == head.seq:
        return []
    if held is not None and held.epoch == head.epoch and 0 < head.seq - held.seq <= settings.maxlen:
        try:
            rows = await trio.to_thread.run_sync(_read_deltas, db_path, head.epoch, held.seq, head.seq)
        except sqlite3.Error as exc:
            log.warning("backplane: cannot read deltas to republish; a snapshot instead", error=str(exc))
            rows = []
        if len(rows) == head.seq - held.seq and rows[0][1] == held.seq:
            log.info("backplane: republishing from SQLite", after=held.seq, count=len(rows))
            return [delta_fields(head.epoch, seq, prev, ts, patch, at) for seq, prev, ts, patch in rows]
    log.info("backplane: publishing a snapshot", epoch=head.epoch, seq=head.seq,
             held=None if held is None else f"{held.epoch}:{held.seq}")
    return [snapshot_fields(head, at)]


async def _write(redis: Redis, settings: BackplaneSettings, entries: list[Fields], head: Head) -> None:
    """One MULTI: the entries, then ``current``."""
    async with redis.pipeline(transaction=True) as pipe:
        for entry in entries:
            pipe.xadd(settings.stream_key, entry, trim_strategy=PureToken.MAXLEN,
                      threshold=settings.maxlen, trim_operator=PureToken.APPROXIMATELY)
        pipe.hset(settings.current_key, current_fields(head))


async def _heartbeat(redis: Redis, settings: BackplaneSettings, outbox: Outbox) -> None:
    while True:
        head = outbox.head
        with trio.fail_after(settings.timeout_s):
            await redis.set(settings.core_key, f"{head.epoch}:{head.seq}:{_now_ms()}",
                            px=settings.core_ttl_ms)
        await trio.sleep(settings.heartbeat_s)


async def _publish(redis: Redis, settings: BackplaneSettings, outbox: Outbox, status: PublisherStatus,
                   db_path: Path) -> None:
    """Bring Redis to the head, then follow it, until the input ends."""
    at: tuple[str, int] | None = None  # what Redis holds, once this connection wrote it
    while True:
        head = outbox.head
        batch = outbox.take()
        if at != (head.epoch, head.seq):
            if _contiguous(at, batch):
                now = _now_ms()
                entries = [delta_fields(c.epoch, c.seq, c.prev, c.ts_ms, c.patch_json, now) for c in batch]
            else:
                entries = await _refill(redis, settings, head, db_path)
            with trio.fail_after(settings.timeout_s):
                await _write(redis, settings, entries, head)
            at = (head.epoch, head.seq)
            status.count(len(outbox.pending), len(entries))
        if outbox.ended.is_set() and not outbox.pending:
            with trio.fail_after(settings.timeout_s):
                await redis.delete([settings.core_key])  # a clean stop: edges mark it at once
            return
        await outbox.changed.wait()


async def _collect(receive: trio.MemoryReceiveChannel[Change], outbox: Outbox,
                   status: PublisherStatus) -> None:
    """Drain the writer's channel at once, whatever Redis does (the channel outlives a restart)."""
    async for change in receive:
        outbox.add(change)
        if status.redis != "ok":
            status.count(status.unpublished + 1)
    outbox.ended.set()
    outbox.changed.set()


async def _connected(settings: BackplaneSettings, outbox: Outbox, status: PublisherStatus,
                     db_path: Path) -> None:
    async with open_redis(settings) as redis:
        await redis.ping()  # answering (and the password accepted) before saying so
        if status.redis != "ok":
            log.info("backplane: Redis reachable; publishing", url=settings.url)
        status.set("ok")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_heartbeat, redis, settings, outbox)
            await _publish(redis, settings, outbox, status, db_path)
            nursery.cancel_scope.cancel()


async def run_backplane(
    settings: BackplaneSettings,
    outbox: Outbox,
    receive: trio.MemoryReceiveChannel[Change],
    status: PublisherStatus,
    db_path: Path,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish committed changes to Redis until the writer closes ``receive``.

    ``outbox.head`` starts as the document the daemon recovered (written to Redis
    at once). At the end the last changes get ``SHUTDOWN_FLUSH_S`` to reach Redis.
    """
    delay = RETRY_FIRST_S
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, receive, outbox, status)
        task_status.started()
        while True:
            try:
                await _connected_until_end(settings, outbox, status, db_path)
                return
            except Exception as exc:  # a Redis failure is retried; anything else raises
                reason = redis_failure(exc)
                if reason is None:
                    raise
                delay = RETRY_FIRST_S if status.redis == "ok" else min(delay * 2, RETRY_MAX_S)
                if status.redis != "unreachable":
                    log.warning("backplane: Redis unreachable; serving locally, republishing on return",
                                url=settings.url, error=reason)
                status.set("unreachable", reason)
                status.count(max(status.unpublished, len(outbox.pending)))
            if outbox.ended.is_set():
                log.warning("backplane: stopped with changes not in Redis", unpublished=status.unpublished)
                return
            with trio.move_on_after(delay):
                await outbox.ended.wait()


async def _connected_until_end(settings: BackplaneSettings, outbox: Outbox, status: PublisherStatus,
                               db_path: Path) -> None:
    """Publish over one connection; once the input ended, give it ``SHUTDOWN_FLUSH_S`` at most."""
    async with trio.open_nursery() as nursery:
        async def bound_at_end() -> None:
            await outbox.ended.wait()
            nursery.cancel_scope.deadline = trio.current_time() + SHUTDOWN_FLUSH_S

        nursery.start_soon(bound_at_end)
        await _connected(settings, outbox, status, db_path)
        nursery.cancel_scope.cancel()
