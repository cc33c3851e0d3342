"""The ASGI lifespan protocol: the app's start-up before the port serves, its shutdown after.

    run_lifespan(app, state) ─▶ app({"type": "lifespan", "state": state}, receive, send)
        "lifespan.startup"  ─▶ "lifespan.startup.complete" (started) | ".failed" (LifespanError)
        stop.set()          ─▶ "lifespan.shutdown" ─▶ "lifespan.shutdown.complete"

An app that raises before it answers the start-up does not speak lifespan
(the ASGI spec): it is served without one. Each phase waits at most
``timeout_s`` for the app's answer.
"""

from __future__ import annotations

import structlog
import trio

from northstard.edges.asgi import ASGI_VERSION, Asgi, Message
from northstard.errors import LifespanError

__all__ = ["run_lifespan"]

log = structlog.get_logger("northstard.web")


class _Lifespan:
    """The two channels between the server and the app's lifespan task."""

    def __init__(self) -> None:
        self.to_app, self.app_in = trio.open_memory_channel[Message](1)
        self.to_server, self.server_in = trio.open_memory_channel[Message](1)

    async def receive(self) -> Message:
        return await self.app_in.receive()

    async def send(self, message: Message) -> None:
        await self.to_server.send(message)


async def _call(app: Asgi, lifespan: _Lifespan, state: dict[str, object]) -> None:
    scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": state}
    try:
        await app(scope, lifespan.receive, lifespan.send)
    except Exception as exc:  # no lifespan support (or a failure, reported as one)
        await lifespan.to_server.send({"type": "lifespan.unsupported", "message": repr(exc)})
    finally:  # ended, answered or not (cancelled too): a phase waiting for it stops waiting
        lifespan.to_server.close()


async def _phase(lifespan: _Lifespan, name: str, timeout_s: float) -> bool:
    """Send ``lifespan.<name>`` and wait for the answer; False if the app speaks no lifespan."""
    await lifespan.to_app.send({"type": f"lifespan.{name}"})
    with trio.fail_after(timeout_s):
        try:
            answer = await lifespan.server_in.receive()
        except trio.EndOfChannel:  # the app's lifespan task ended (or was cancelled) unanswered
            log.debug("the web app's lifespan ended before answering", phase=name)
            return False
    if answer["type"] == f"lifespan.{name}.failed":
        raise LifespanError(f"the web app's {name} failed: {answer.get('message', '')}")
    if answer["type"] == "lifespan.unsupported":
        log.debug("the web app speaks no lifespan", error=answer["message"])
        return False
    return True


async def run_lifespan(app: Asgi, state: dict[str, object], stop: trio.Event, *, timeout_s: float = 60.0,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Start ``app`` (its lifespan fills ``state``), report started, shut it down at ``stop``."""
    lifespan = _Lifespan()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_call, app, lifespan, state)
        supported = await _phase(lifespan, "startup", timeout_s)
        task_status.started()
        await stop.wait()
        if supported:
            with trio.CancelScope(shield=True):
                await _phase(lifespan, "shutdown", timeout_s)
        nursery.cancel_scope.cancel()
