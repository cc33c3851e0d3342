"""The daemon's table of actors: rows start in order, each once the one before it is ready."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing

from northstard.actors.supervisor import Supervisor
from northstard.actors.table import Actor, start_actors


async def _actor(name: str, log: list[str], ready: trio.Event, *,
                 task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    log.append(f"{name} starting")
    await ready.wait()
    log.append(f"{name} ready")
    task_status.started()
    await trio.sleep_forever()


async def test_each_row_starts_once_the_one_before_is_ready() -> None:
    log: list[str] = []
    first, second = trio.Event(), trio.Event()
    supervisor = Supervisor()
    table = [Actor("writer", partial(_actor, "writer", log, first)),
             Actor("alerts", partial(_actor, "alerts", log, second), core=False)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(start_actors, supervisor, nursery, table)
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["writer starting"]  # the second row waits for the first to be ready
        first.set()
        second.set()
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["writer starting", "writer ready", "alerts starting", "alerts ready"]
        assert [(a.name, a.core) for a in supervisor.actors.values()] == [("writer", True), ("alerts", False)]
        nursery.cancel_scope.cancel()


def test_a_row_says_what_it_is() -> None:
    assert repr(Actor("grpc", trio.sleep_forever, core=False)) == "<Actor grpc (not core)>"
