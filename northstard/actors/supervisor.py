"""The supervisor: starts actors in order, restarts crashed ones with backoff.

A crashed actor is restarted after an exponential backoff, with a log line
saying why. A source may fail forever without stopping the daemon. A core
actor (engine, writer, hub, cache) that crashes more than ``max_restarts``
times within ``window_s`` raises ``SupervisorGaveUp``, which ends the process
non-zero so that systemd restarts it.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
import trio

from northstard.errors import leaf

__all__ = ["ActorStatus", "Supervisor", "SupervisorGaveUp"]

log = structlog.get_logger("northstard.supervisor")


class SupervisorGaveUp(Exception):
    """A core actor kept crashing."""


@dataclass
class ActorStatus:
    name: str
    core: bool
    state: str = "starting"
    restarts: int = 0
    last_error: str | None = None
    crashes: deque[float] = field(default_factory=deque)

    def document(self) -> dict[str, object]:
        doc: dict[str, object] = {"state": self.state, "core": self.core, "restarts": self.restarts}
        if self.last_error:
            doc["last_error"] = self.last_error
        return doc


@dataclass(frozen=True)
class Policy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class Supervisor:
    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.actors: dict[str, ActorStatus] = {}

    def __repr__(self) -> str:
        states = {name: s.state for name, s in self.actors.items()}
        return f"<Supervisor {states}>"

    def healthy(self) -> bool:
        return all(s.state == "running" for s in self.actors.values() if s.core)

    async def start(
        self,
        nursery: trio.Nursery,
        name: str,
        actor: Callable[..., Awaitable[object]],
        *args: object,
        core: bool = True,
    ) -> None:
        """Start ``actor(*args, task_status=...)`` and return once it is ready."""
        status = ActorStatus(name, core)
        self.actors[name] = status
        await nursery.start(self._keep, status, actor, args)

    async def _keep(
        self,
        status: ActorStatus,
        actor: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        started = False
        delay = self.policy.backoff_initial_s
        structlog.contextvars.bind_contextvars(actor=status.name)  # trio copies it to the actor
        bound = log.bind(actor=status.name)
        while True:
            began = trio.current_time()
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(actor, *args)
                    status.state = "running"
                    if not started:
                        started = True
                        task_status.started()
            except Exception as exc:
                if not started and status.core:
                    raise
                if trio.current_time() - began > self.policy.window_s:
                    delay = self.policy.backoff_initial_s  # it ran well for a while: start over
                self._crashed(status, exc)
                bound.error(
                    "actor crashed; restarting",
                    error=status.last_error,
                    restarts=status.restarts,
                    in_s=round(delay, 3),
                    traceback="".join(traceback.format_exception(exc))[-2000:],
                )
                if not started:  # a source that fails at start does not hold up the others
                    started = True
                    task_status.started()
                status.state = "restarting"
                await trio.sleep(delay)
                delay = min(delay * 2, self.policy.backoff_max_s)
            else:
                status.state = "stopped"
                return

    def _crashed(self, status: ActorStatus, exc: BaseException) -> None:
        now = trio.current_time()
        status.restarts += 1
        exc = leaf(exc)
        status.last_error = f"{type(exc).__name__}: {exc}"[:300]
        status.crashes.append(now)
        while status.crashes and status.crashes[0] < now - self.policy.window_s:
            status.crashes.popleft()
        if status.core and len(status.crashes) > self.policy.max_restarts:
            status.state = "failed"
            raise SupervisorGaveUp(
                f"{status.name} crashed {len(status.crashes)} times in {self.policy.window_s:g} s"
            ) from exc
