"""The edge's follower actor: Redis ─XREAD BLOCK─▶ the edge's hub and cache.

It loads ``current`` and the stream's last id in one MULTI, then reads the
stream from there (``XREAD BLOCK``, ``READ_COUNT`` entries at most per read),
and sends each effect (``follow.Followed.take``) to the edge's hub and cache.
A hole (an entry that does not follow) reloads ``current``. After a Redis
reconnect the edge continues with ``XREAD`` from its last entry id when that
entry is still in the stream (Redis kept its data: AOF), so its clients get
deltas, not a snapshot; only a lost position reloads ``current``. A second
task watches the core's liveness key every heartbeat: gone (or Redis
unreachable for longer than the key would live, three heartbeats) means the
clients get the last document marked ``core: unreachable`` (``follow.marked``);
the mark goes when the heartbeat or a change is back. Redis failures are
logged once (and the return once) and retried with backoff.

Bound: one read holds at most ``READ_COUNT`` entries (each a change's patch
text); the hub and cache channels are the daemon's (bounded, awaited).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
import trio
from coredis.response.types import StreamEntry

from northstard.actors.backplane.client import Redis, open_redis, redis_failure
from northstard.core.backplane.follow import Followed, Reset, marked
from northstard.core.backplane.settings import BackplaneSettings
from northstard.core.backplane.wire import Entry, parse_current, parse_entry, parse_heartbeat, text
from northstard.core.change import Change
from northstard.status.backplane import EdgeStatus

__all__ = ["Batch", "Feed", "run_follower"]

log = structlog.get_logger("northstard.edge")
READ_COUNT = 1000
BLOCK_MS = 1000
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 5.0

Item = Change | Reset
Batch = list[Item]


@dataclass
class Feed:
    """The edge's state across reconnections (kept by the supervisor across restarts too)."""

    hub: trio.MemorySendChannel[Batch]
    cache: trio.MemorySendChannel[Change]
    status: EdgeStatus
    followed: Followed | None = None
    last_id: str = "0-0"
    is_marked: bool = False

    async def send(self, batch: Batch) -> None:
        """One hub update per Redis read: subscribers wake once, so a client that was behind
        (a paused edge catching up) gets one merged delta; the cache needs only the last."""
        if not batch:
            return
        await self.hub.send(batch)
        last = batch[-1]
        await self.cache.send(last.as_change() if isinstance(last, Reset) else last)

    async def mark(self, unreachable: bool) -> None:
        """Show (or clear) ``core: unreachable`` to the clients."""
        self.status.set(core="unreachable" if unreachable else "ok")
        if unreachable == self.is_marked or self.followed is None:
            return
        self.is_marked = unreachable
        reset = self.followed.reset()
        log.warning("core unreachable: serving the last state, marked") if unreachable else \
            log.info("core reachable again")
        await self.send([marked(reset) if unreachable else reset])


async def _still_there(redis: Redis, settings: BackplaneSettings, feed: Feed) -> bool:
    """Whether the edge's last entry is still in the stream (then what follows it is too:
    ``MAXLEN`` trims the oldest first), so reading on from it misses nothing."""
    if feed.followed is None or feed.followed.gap or feed.last_id == "0-0":
        return False
    entries = await redis.xrange(settings.stream_key, start=feed.last_id, end=feed.last_id, count=1)
    return bool(entries)


async def _resume(redis: Redis, settings: BackplaneSettings, feed: Feed) -> None:
    """After a (re)connect: on from the last entry id when Redis still has it, else ``_load``."""
    if await _still_there(redis, settings, feed):
        log.info("edge: continuing the stream from its position", id=feed.last_id)
        return
    await _load(redis, settings, feed)


async def _load(redis: Redis, settings: BackplaneSettings, feed: Feed) -> None:
    """``current`` and the stream's last id, together (they are written together)."""
    async with redis.pipeline(transaction=True) as pipe:
        current = pipe.hgetall(settings.current_key)
        last = pipe.xrevrange(settings.stream_key, count=1)
    head = parse_current(await current)
    entries = await last
    feed.last_id = text(entries[0].identifier) if entries else "0-0"
    if head is None:
        return
    followed = feed.followed
    if followed is None or (followed.epoch, followed.seq) != (head.epoch, head.seq) or followed.gap:
        feed.followed = Followed.of(head)
        feed.is_marked = False
        feed.status.applied(head.seq, resync=True)
        log.info("edge: loaded the snapshot", epoch=head.epoch, seq=head.seq)
        await feed.send([feed.followed.reset()])


async def _read(redis: Redis, settings: BackplaneSettings, last_id: str) -> list[StreamEntry]:
    """Wait for entries after ``last_id``, then take whatever else is already there
    (``READ_COUNT`` at most): after a pause, everything missed is one batch."""
    read = await redis.xread({settings.stream_key: last_id}, count=READ_COUNT, block=BLOCK_MS)
    entries = list((read or {}).get(settings.stream_key, ()))
    while entries and len(entries) < READ_COUNT:
        more = await redis.xread({settings.stream_key: text(entries[-1].identifier)},
                                 count=READ_COUNT - len(entries))
        found = (more or {}).get(settings.stream_key, ())
        if not found:
            break
        entries.extend(found)
    return entries


async def _follow(redis: Redis, settings: BackplaneSettings, feed: Feed) -> None:
    while True:
        batch: Batch = []
        for raw in await _read(redis, settings, feed.last_id):
            feed.last_id = text(raw.identifier)
            try:
                effect = _take(feed, parse_entry(raw.field_values))
            except (KeyError, ValueError) as exc:  # not ours (a foreign writer): skipped, said
                log.warning("edge: skipped a stream entry that is not northstard's", id=feed.last_id,
                            error=f"{type(exc).__name__}: {exc}")
                continue
            if effect is not None:
                batch.append(effect)
            if feed.followed is not None and feed.followed.gap:
                break
        if batch and feed.is_marked:  # a change: the core is back
            await feed.mark(False)
        await feed.send(batch)
        if feed.followed is not None and feed.followed.gap:
            log.info("edge: a hole in the stream; reloading the snapshot", at=feed.followed.seq)
            await _load(redis, settings, feed)


def _take(feed: Feed, entry: Entry) -> Item | None:
    if feed.followed is None:
        if entry.kind != "snapshot":
            return None  # nothing to apply it to yet: wait for a snapshot
        feed.followed = Followed(entry.epoch, -1, entry.ts_ms, {})
    effect = feed.followed.take(entry)
    if effect is not None:
        lag = int(time.time() * 1000) - entry.at_ms if entry.at_ms else None
        feed.status.applied(feed.followed.seq, lag, resync=isinstance(effect, Reset))
    return effect


async def _watch_core(redis: Redis, settings: BackplaneSettings, feed: Feed) -> None:
    while True:
        with trio.fail_after(settings.timeout_s):
            beat = parse_heartbeat(await redis.get(settings.core_key))
        if beat is not None and feed.followed is not None and beat[0] == feed.followed.epoch:
            feed.status.core_seq = beat[1]
        await feed.mark(beat is None)
        await trio.sleep(settings.heartbeat_s)


async def _connected(settings: BackplaneSettings, feed: Feed) -> None:
    async with open_redis(settings) as redis:
        await _resume(redis, settings, feed)
        if feed.status.redis != "ok":
            log.info("edge: following Redis", url=settings.url)
        feed.status.set(redis="ok")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_core, redis, settings, feed)
            await _follow(redis, settings, feed)


async def run_follower(
    settings: BackplaneSettings,
    feed: Feed,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow the stream forever; started at once (the cache is ready with the first snapshot)."""
    delay = RETRY_FIRST_S
    down_since: float | None = None
    task_status.started()
    while True:
        try:
            await _connected(settings, feed)
        except Exception as exc:  # a Redis failure is retried; anything else raises
            reason = redis_failure(exc)
            if reason is None:
                raise
            delay = RETRY_FIRST_S if feed.status.redis == "ok" else min(delay * 2, RETRY_MAX_S)
            if feed.status.redis != "unreachable":
                down_since = trio.current_time()
                log.warning("edge: Redis unreachable; serving the last state", url=settings.url,
                            error=reason)
            feed.status.set(redis="unreachable", error=reason)
            if down_since is not None and trio.current_time() - down_since >= settings.core_ttl_ms / 1000:
                await feed.mark(True)  # as long as the core's liveness key lives: a blip is not marked
        await trio.sleep(delay)
