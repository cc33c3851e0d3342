"""The writer actor: the only read-write SQLite connection.

Changes from the engine are written in batches: one transaction per batch,
flushed when ``batch_max`` changes wait or ``batch_deadline_ms`` has passed
since the first, whichever comes first. Only after the transaction commits
are the changes passed on (to the hub and the cache): what a client sees is
on disk.

The SQLite work runs in a process of its own (``store/writer_child``, started
and asked through ``store/writer_process``), so that it runs while the engine
computes the next changes instead of taking turns with it on one GIL. What a
batch writes is decided here (``store/batch.prepare``, in a worker thread) and
sent as one request; the answer comes after the commit.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
import trio

from northstard.config import default
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.errors import StoreError, WriterGone
from northstard.store import rollup
from northstard.store.batch import prepare, snapshot_statement
from northstard.store.batch import run as run_job
from northstard.store.writer_child import RETENTION_CHUNK, dumps
from northstard.store.writer_process import WriterProcess

__all__ = ["WriterSettings", "WriterState", "run_writer", "write_batch"]

log = structlog.get_logger("northstard.writer")

RETENTION_EVERY_S = 600.0
IN_FLIGHT = 3  # jobs in the writer's process: the one it writes, the next ones queued
RETRY_S = 2.0
UNSAVED = "~unsaved"


@dataclass(frozen=True)
class WriterSettings:
    path: Path
    synchronous: str = default("storage", "synchronous", str)
    batch_max: int = default("storage", "batch_max", int)
    batch_deadline_s: float = default("storage", "batch_deadline_ms", float) / 1000
    snapshot_every: int = default("storage", "snapshot_every", int)
    keep_deltas_days: float = default("storage", "keep_deltas_days", float)
    keep_buckets_days: float = default("storage", "keep_buckets_days", float)


@dataclass
class WriterState:
    """Kept across restarts of the writer: the batch not yet committed, the open buckets."""

    buckets: BucketSet
    pending: list[Change] = field(default_factory=list)
    committed_seq: int = 0
    batches: int = 0
    last_batch_size: int = 0
    last_batch_s: float = 0.0
    last_retention: float = 0.0
    last_change: Change | None = None
    published_seq: int = 0
    degraded: str | None = None
    # for ``write_batch`` in this process (the writer's process keeps its own)
    rollup: rollup.RunningTotals = field(default_factory=rollup.RunningTotals)


def write_batch(
    conn: sqlite3.Connection, batch: Sequence[Change], state: WriterState, settings: WriterSettings
) -> None:
    """The batch's transaction in this process (``store/batch``): what the writer's process
    does with a job, for tools and tests that hold a connection of their own."""
    job = prepare(batch, state.buckets, settings.snapshot_every, int(time.time() * 1000))
    run_job(conn, job, state.rollup)


async def _next_batch(
    receive: trio.MemoryReceiveChannel[Change], settings: WriterSettings, patience: float
) -> list[Change] | None:
    """The next batch: waits (up to ``patience``, 0: not at all) for a first change, then
    takes what waits and gathers until full or the deadline. ``[]`` when patience ran out;
    None at the end of the input."""
    batch: list[Change] = []
    try:
        if not _take_waiting(receive, batch, 1) and patience > 0:
            with trio.move_on_after(patience):
                batch.append(await receive.receive())
        if not batch:
            return batch
        _take_waiting(receive, batch, settings.batch_max)
        with trio.move_on_after(settings.batch_deadline_s):
            while len(batch) < settings.batch_max:
                batch.append(await receive.receive())
                _take_waiting(receive, batch, settings.batch_max)
    except trio.EndOfChannel:
        return batch or None
    return batch


def _take_waiting(receive: trio.MemoryReceiveChannel[Change], batch: list[Change],
                  limit: int) -> bool:
    """Add what waits in ``receive`` to ``batch``, up to ``limit`` in all; True if any."""
    size = len(batch)
    while len(batch) < limit:
        try:
            batch.append(receive.receive_nowait())
        except trio.WouldBlock:
            break
    return len(batch) > size


async def _publish(
    outputs: Sequence[trio.MemorySendChannel[Change]], changes: Sequence[Change]
) -> None:
    for output in outputs:
        for change in changes:
            await output.send(change)


@dataclass
class _Job:
    """A batch's changes and its write request, encoded (``writer_child.dumps``)."""

    changes: list[Change]
    frame: bytes


def _job(batch: list[Change], state: WriterState, settings: WriterSettings) -> _Job:
    """The batch's write request (run in a worker thread: encoding a large batch takes
    milliseconds the event loop does not wait for)."""
    job = prepare(batch, state.buckets, settings.snapshot_every, int(time.time() * 1000))
    return _Job(batch, dumps(("write", job.wire())))


class _Pipeline:
    """Jobs in the writer's process (one being written, the next queued: the process starts
    each as soon as the one before commits; at most ``IN_FLIGHT``) and jobs ready behind
    them: the next batches are gathered and encoded while the process writes.

    Jobs are written in order; one that SQLite refuses goes back to the front with the ones
    behind it (which the process dropped unwritten) and is sent again later (the same
    transaction: the child forgot its running totals). Ready jobs: at most one in normal
    operation; while the store is degraded, one per batch that waits (nothing is dropped).
    """

    def __init__(self, writer: WriterProcess, state: WriterState, settings: WriterSettings,
                 outputs: Sequence[trio.MemorySendChannel[Change]], observe: Any) -> None:
        self.writer, self.state, self.settings = writer, state, settings
        self.outputs, self.observe = outputs, observe
        self.ready: deque[_Job] = deque()
        self.in_flight: deque[_Job] = deque()
        self.last_answer = 0.0

    async def add(self, batch: list[Change]) -> None:
        self.state.pending.extend(batch)
        self.ready.append(await trio.to_thread.run_sync(_job, batch, self.state, self.settings))

    def send(self) -> None:
        """Submit ready jobs, up to ``IN_FLIGHT`` in the process."""
        while self.ready and len(self.in_flight) < IN_FLIGHT:
            if not self.in_flight:
                self.last_answer = time.perf_counter()
            if not self.writer.submit(self.ready[0].frame):
                break  # a refusal is on its way: it is read first
            self.in_flight.append(self.ready.popleft())

    async def settle(self) -> bool:
        """Wait for the oldest job's answer; committed: pass its changes on. False when SQLite
        refused it (the store goes degraded: the changes stay pending, passed on as unsaved)."""
        job = self.in_flight.popleft()
        try:
            await self.writer.answer()
        except StoreError as exc:
            self.ready.extendleft(reversed([job, *self.in_flight]))
            self.in_flight.clear()
            await _degraded(self.state, self.outputs, str(exc))
            return False
        now = time.perf_counter()
        seconds, self.last_answer = now - self.last_answer, now
        await _committed(self.state, job.changes, seconds, self.outputs, self.observe)
        return True

    async def abandon(self) -> None:
        """On the way out by an error: a job the process has started is answered (and so known
        committed or not) before the actor is restarted with what is still pending."""
        started = len(self.in_flight) - self.writer.withdraw()
        with contextlib.suppress(StoreError, WriterGone):  # not committed: it stays pending
            for job in list(self.in_flight)[:started]:
                await self.writer.answer()
                done = {c.seq for c in job.changes}
                self.state.pending = [c for c in self.state.pending if c.seq not in done]
        self.in_flight.clear()


async def _committed(state: WriterState, batch: list[Change], seconds: float,
                     outputs: Sequence[trio.MemorySendChannel[Change]], observe: Any) -> None:
    if state.degraded is not None:
        log.warning("store recovered: persisting again", saved=len(batch))
        state.degraded = None
    state.last_batch_s = seconds
    state.last_batch_size = len(batch)
    state.batches += 1
    state.committed_seq = batch[-1].seq
    state.last_change = batch[-1]
    del state.pending[:len(batch)]
    observe(len(batch), seconds)
    fresh = [c for c in batch if c.seq > state.published_seq]
    state.published_seq = max(state.published_seq, batch[-1].seq)
    await _publish(outputs, fresh)


async def _degraded(
    state: WriterState, outputs: Sequence[trio.MemorySendChannel[Change]], reason: str
) -> None:
    """When SQLite fails (disk full, read-only), the store goes degraded: nothing is dropped
    (the changes stay pending and are retried) and the stream stays alive: they are passed on
    under the epoch ``<epoch>~unsaved``, so no client can resume from a position not on disk."""
    if state.degraded is None:
        log.error("store degraded: cannot persist; changes kept in memory and retried",
                  error=reason, pending=len(state.pending))
    state.degraded = reason
    fresh = [
        replace(c, epoch=f"{c.epoch}{UNSAVED}") for c in state.pending if c.seq > state.published_seq
    ]
    if fresh:
        state.published_seq = fresh[-1].seq
        await _publish(outputs, fresh)


async def _already_committed(pipeline: _Pipeline) -> None:
    """Pending changes the store already has (a writer process that died between its commit and
    its answer) are passed on as committed, not written again (the rollup would add them twice)."""
    state, committed = pipeline.state, pipeline.writer.committed
    if committed is None or not state.pending:
        return
    epoch, seq = committed
    done = [c for c in state.pending if c.epoch == epoch and c.seq <= seq]
    if done:
        log.warning("pending changes found committed: passed on, not written again",
                    changes=len(done), seq=seq)
        await _committed(state, done, 0.0, pipeline.outputs, pipeline.observe)


async def _write_all(pipeline: _Pipeline, receive: trio.MemoryReceiveChannel[Change]) -> None:
    """Write what comes until the input ends and every job is answered (or, degraded at the
    end, one last attempt failed)."""
    state, settings = pipeline.state, pipeline.settings
    await _already_committed(pipeline)
    if state.pending:  # changes left by a crashed run of this actor, or not yet saved
        pending, state.pending = state.pending, []
        await pipeline.add(pending)
    closed = False
    while True:
        if not closed and len(pipeline.in_flight) < IN_FLIGHT:
            busy = bool(pipeline.in_flight) or (bool(pipeline.ready) and state.degraded is None)
            patience = 0.0 if busy else RETRY_S if state.degraded is not None else math.inf
            batch = await _next_batch(receive, settings, patience)
            if batch is None:
                closed = True
            elif batch:
                await pipeline.add(batch)
                pipeline.send()
                if state.degraded is None and len(pipeline.in_flight) < IN_FLIGHT:
                    continue  # more may wait: the process is fed before its answer is awaited
        pipeline.send()
        if pipeline.in_flight:
            if not await pipeline.settle() and closed:
                break  # the last attempt, after the input ended
            if not pipeline.in_flight and not pipeline.ready:
                await _maybe_retention(pipeline.writer, state, settings)
        elif closed and not pipeline.ready:
            break


async def run_writer(
    settings: WriterSettings,
    state: WriterState,
    receive: trio.MemoryReceiveChannel[Change],
    outputs: Sequence[trio.MemorySendChannel[Change]],
    observe: object = lambda size, seconds: None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write changes until the input closes; then flush, close SQLite and close the outputs.
    The SQLite work runs in the writer's own process (``store/writer_process``)."""
    writer = await WriterProcess.start(settings.path, settings.synchronous)
    try:
        task_status.started()
        pipeline = _Pipeline(writer, state, settings, outputs, observe)
        try:
            await _write_all(pipeline, receive)
        except BaseException:
            await pipeline.abandon()
            raise
        if state.pending:
            log.critical("changes not persisted at shutdown", lost=len(state.pending),
                         first_seq=state.pending[0].seq, error=state.degraded)
        if state.last_change is not None and state.degraded is None:
            await writer.call("statements", [snapshot_statement(state.last_change)])
        if state.degraded is None:
            await _checkpoint(writer)
        log.info("writer flushed", seq=state.committed_seq)
    finally:
        await writer.close()
    for output in outputs:
        await output.aclose()


async def _checkpoint(writer: WriterProcess) -> None:
    """At shutdown: everything into the main file, the WAL emptied (``writer_child``)."""
    try:
        await writer.call("checkpoint")
    except StoreError as exc:
        log.warning("checkpoint at shutdown failed", error=str(exc))


async def _maybe_retention(
    writer: WriterProcess, state: WriterState, settings: WriterSettings
) -> None:
    now = trio.current_time()
    if now - state.last_retention < RETENTION_EVERY_S and state.last_retention:
        return
    state.last_retention = now
    removed = await writer.call("retention", settings.keep_deltas_days, settings.keep_buckets_days)
    assert isinstance(removed, int)
    if removed >= RETENTION_CHUNK:
        state.last_retention = 0.0  # more to go: another chunk after the next batch
    if removed:
        log.info("retention", removed=removed)
