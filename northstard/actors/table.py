"""A table of actors: each row names an actor, binds its arguments and says if it is core.

The daemon and the edge node describe what they run as rows and start them in
table order, each once it is ready (``nursery.start``), under the supervisor:
a core actor that crashes more often than ``[supervisor] max_core_restarts``
ends the process (exit 70); any other actor is restarted with backoff and
marked in ``/api/health`` while it is down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import trio

from northstard.actors.supervisor import Supervisor

__all__ = ["Actor", "start_actors"]


@dataclass(frozen=True)
class Actor:
    """One row: ``run(task_status=...)`` is the actor with its arguments bound."""

    name: str
    run: Callable[..., Awaitable[None]]
    core: bool = True

    def __repr__(self) -> str:
        return f"<Actor {self.name}{'' if self.core else ' (not core)'}>"


async def start_actors(supervisor: Supervisor, nursery: trio.Nursery, table: Iterable[Actor]) -> None:
    """Start every row in order, each once the one before it is ready."""
    for actor in table:
        await supervisor.start(nursery, actor.name, actor.run, core=actor.core)
