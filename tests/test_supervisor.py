"""The supervisor, under a virtual clock: restarts with backoff, giving up on a core actor."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from northstard.actors.supervisor import Policy, Supervisor, SupervisorGaveUp

POLICY = Policy(max_restarts=3, window_s=60.0, backoff_initial_s=0.5, backoff_max_s=4.0)


class Flaky:
    """An actor that crashes (after starting) ``crashes`` times, then runs until cancelled."""

    def __init__(self, crashes: float, *, before_start: bool = False, returns: bool = False) -> None:
        self.crashes = crashes
        self.before_start = before_start
        self.returns = returns
        self.attempts: list[float] = []
        self.running = trio.Event()

    async def __call__(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.attempts.append(trio.current_time())
        crash = len(self.attempts) <= self.crashes
        if crash and self.before_start:
            raise RuntimeError(f"boom {len(self.attempts)}")
        task_status.started()
        if crash:
            await trio.lowlevel.checkpoint()
            raise RuntimeError(f"boom {len(self.attempts)}")
        self.running.set()
        if self.returns:
            return
        await trio.sleep_forever()


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 9) for a, b in pairwise(times)]


async def test_crashing_actor_is_restarted_with_exponential_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(POLICY)
    actor = Flaky(crashes=2)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await supervisor.start(nursery, "engine", actor)
            await actor.running.wait()
            await trio.testing.wait_all_tasks_blocked()  # let the supervisor see it too
            status = supervisor.actors["engine"]
            assert status.state == "running"
            assert status.restarts == 2
            assert supervisor.healthy()
            nursery.cancel_scope.cancel()
    assert len(actor.attempts) == 3
    assert gaps(actor.attempts) == [0.5, 1.0]  # the backoff doubles
    crashed = [e for e in logs if e["event"] == "actor crashed; restarting"]
    assert [e["actor"] for e in crashed] == ["engine", "engine"]
    assert [e["restarts"] for e in crashed] == [1, 2]
    assert [e["in_s"] for e in crashed] == [0.5, 1.0]
    assert [e["error"] for e in crashed] == ["RuntimeError: boom 1", "RuntimeError: boom 2"]
    assert all(e["log_level"] == "error" for e in crashed)
    assert "RuntimeError: boom 1" in crashed[0]["traceback"]


async def test_backoff_is_capped(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(Policy(max_restarts=100, window_s=1.0, backoff_initial_s=0.5,
                                   backoff_max_s=4.0))
    actor = Flaky(crashes=7)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, "writer", actor)
        await actor.running.wait()
        nursery.cancel_scope.cancel()
    assert gaps(actor.attempts) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


async def test_restarting_state_during_the_backoff(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(POLICY)
    actor = Flaky(crashes=1)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, "hub", actor)
        await trio.testing.wait_all_tasks_blocked()
        status = supervisor.actors["hub"]
        assert status.state == "restarting"
        assert not supervisor.healthy()
        assert status.document()["state"] == "restarting"
        assert status.document()["restarts"] == 1
        await actor.running.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert status.state == "running"
        assert status.document() == {"state": "running", "core": True, "restarts": 1,
                                     "last_error": status.last_error}
        nursery.cancel_scope.cancel()


async def test_last_error_names_the_actors_exception(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(POLICY)
    actor = Flaky(crashes=1)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, "cache", actor)
        await actor.running.wait()
        nursery.cancel_scope.cancel()
    assert supervisor.actors["cache"].last_error == "RuntimeError: boom 1"


async def test_a_non_core_actor_crashing_forever_never_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(POLICY)
    always = Flaky(crashes=float("inf"), before_start=True)
    healthy = Flaky(crashes=0)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            # a source failing at start does not hold up the others
            await supervisor.start(nursery, "source:kalshi", always, core=False)
            await supervisor.start(nursery, "engine", healthy)
            await trio.sleep(3600)
            await trio.testing.wait_all_tasks_blocked()
            status = supervisor.actors["source:kalshi"]
            assert status.state == "restarting"
            assert status.restarts == len(always.attempts) >= 100
            assert supervisor.healthy()  # only core actors count
            nursery.cancel_scope.cancel()
    assert max(gaps(always.attempts)) == POLICY.backoff_max_s
    assert len(healthy.attempts) == 1
    crashed = [e for e in logs if e["event"] == "actor crashed; restarting"]
    assert {e["actor"] for e in crashed} == {"source:kalshi"}


async def test_a_core_actor_that_keeps_crashing_ends_the_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(POLICY)
    actor = Flaky(crashes=float("inf"))
    bystander_cancelled = False

    async def bystander() -> None:
        nonlocal bystander_cancelled
        try:
            await trio.sleep_forever()
        finally:
            bystander_cancelled = True

    with pytest.RaisesGroup(pytest.RaisesExc(SupervisorGaveUp, match="writer crashed 4 times")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bystander)
            await supervisor.start(nursery, "writer", actor)
            await trio.sleep_forever()
    status = supervisor.actors["writer"]
    assert status.state == "failed"
    assert status.restarts == POLICY.max_restarts + 1
    assert len(actor.attempts) == POLICY.max_restarts + 1
    assert trio.current_time() == pytest.approx(0.5 + 1.0 + 2.0)
    assert bystander_cancelled


async def test_crashes_outside_the_window_are_forgiven(autojump_clock: trio.testing.MockClock) -> None:
    """Three crashes per window are tolerated; crashes spread wider than the window never add up."""
    supervisor = Supervisor(Policy(max_restarts=3, window_s=10.0, backoff_initial_s=8.0,
                                   backoff_max_s=8.0))
    actor = Flaky(crashes=12)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, "cache", actor)
        await actor.running.wait()
        nursery.cancel_scope.cancel()
    status = supervisor.actors["cache"]
    assert status.restarts == 12
    assert len(status.crashes) <= 2


async def test_a_core_actor_failing_at_start_raises_from_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(POLICY)
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="boom 1"), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await supervisor.start(nursery, "engine", Flaky(crashes=1, before_start=True))
    assert supervisor.actors["engine"].restarts == 0


async def test_an_actor_that_returns_is_stopped(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(POLICY)
    actor = Flaky(crashes=0, returns=True)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, "hub", actor)
    status = supervisor.actors["hub"]
    assert status.state == "stopped"
    assert status.restarts == 0
    assert len(actor.attempts) == 1
    assert not supervisor.healthy()
    assert repr(supervisor) == "<Supervisor {'hub': 'stopped'}>"


async def test_start_returns_once_the_actor_is_ready(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(POLICY)
    ready: list[str] = []

    async def slow_starter(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(5)
        ready.append("writer")
        task_status.started()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, "writer", slow_starter)
        assert ready == ["writer"]
        assert trio.current_time() == 5
        assert supervisor.actors["writer"].state == "running"
        nursery.cancel_scope.cancel()
