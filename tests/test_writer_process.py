"""The writer's process (``store/writer_child``): it dies with the daemon, and when it dies
alone the writer actor fails without losing a change, and its restart writes what was pending."""

from __future__ import annotations

import math
import os
import signal
from contextlib import closing
from pathlib import Path

import pytest
import trio
from test_writer import Engine, cost, epoch_of, rows, settings_for, write_all

from northstard.actors.writer import WriterState, run_writer, write_batch
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.errors import WriterGone
from northstard.store.sqlite import open_writer

from conftest import write_config
from proc import DaemonProcess


def writer_children(pid: int) -> list[int]:
    """The writer processes among ``pid``'s children (``/proc``: every thread's list)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"northstard.store.writer_child" in command:
                found.append(int(child))
    return found


async def ended(pid: int) -> None:
    """Wait until process ``pid`` (not our child) has ended: its pidfd turns readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


@pytest.mark.slow
async def test_the_writer_process_dies_with_the_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.05, "seed": 2}})
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        [child] = writer_children(daemon.pid)
        await daemon.kill()  # SIGKILL: no chance to close anything
        with trio.fail_after(10):
            await ended(child)  # killed by the kernel (PR_SET_PDEATHSIG), not left writing
    finally:
        await daemon.kill()


async def test_a_writer_process_that_dies_fails_the_actor_and_its_restart_loses_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "northstard.db"
    engine = Engine(epoch_of(db))
    state = WriterState(buckets=BucketSet())
    settings = settings_for(db)
    send, receive = trio.open_memory_channel[Change](math.inf)
    out_send, out_receive = trio.open_memory_channel[Change](math.inf)
    with pytest.raises(ExceptionGroup) as failed:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_writer, settings, state, receive, [out_send])
            [child] = writer_children(os.getpid())
            os.kill(child, signal.SIGKILL)
            await ended(child)
            send.send_nowait(engine.change("shop", cost(1)))
    assert failed.group_contains(WriterGone, match="writer process ended")
    assert [c.seq for c in state.pending] == [1] and state.committed_seq == 0
    # the supervisor's restart: the same state, a new process; the pending change goes first
    send.send_nowait(engine.change("shop", cost(2)))
    send.close()
    await run_writer(settings, state, receive, [out_send])
    assert [c.seq async for c in out_receive] == [1, 2]
    assert rows(db, "SELECT seq FROM deltas ORDER BY seq") == [(1,), (2,)]
    assert rows(db, "SELECT id FROM rec_cost ORDER BY id") == [("c-1",), ("c-2",)]


async def test_a_batch_committed_before_its_answer_was_read_is_not_written_again(
    tmp_path: Path,
) -> None:
    """The writer process died between its commit and its answer: the restarted actor still
    has the batch pending. It passes it on once and does not write it again (the explain
    rollup would add its groups a second time)."""
    db = tmp_path / "northstard.db"
    engine = Engine(epoch_of(db))
    first = engine.change("shop", cost(1))
    with closing(open_writer(db, "normal")) as conn:  # what the dead process committed
        write_batch(conn, [first], WriterState(buckets=BucketSet()), settings_for(db))
    rollup = "SELECT group_id, seq, total FROM rollup ORDER BY group_id, seq"
    before = rows(db, rollup)
    state = WriterState(buckets=BucketSet(), pending=[first])
    [out] = await write_all(settings_for(db), state, [engine.change("shop", cost(2))])
    assert [c.seq for c in out] == [1, 2] and state.pending == []
    assert [r for r in rows(db, rollup) if r[1] == 1] == before  # change 1 added once
    assert rows(db, "SELECT seq FROM deltas ORDER BY seq") == [(1,), (2,)]
