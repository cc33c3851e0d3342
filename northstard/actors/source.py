"""The source actor: drives one plugin instance and feeds the engine.

``run_source`` polls ``Source.poll()`` every interval (and, if the instance
has ``stream()``, consumes the stream at the same time, polling staying as the
reconciling backstop). Each poll has a time limit; failures go through a
circuit breaker; the engine gets a ``Reading`` per success and a
``SourceFailed`` per failure, so a failing source is marked in the snapshot
while the others keep streaming. Going down and coming back are logged once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, runtime_checkable

import structlog
import trio

from northstard.config import Field, SourceSection
from northstard.core.breaker import Breaker
from northstard.core.records import Reading
from northstard.errors import SourceError

__all__ = ["Source", "SourceFailed", "SourceType", "StreamingSource", "run_source", "scrub"]

log = structlog.get_logger("northstard.source")


@dataclass(frozen=True)
class SourceType:
    """A kind of source a plugin provides."""

    name: str
    description: str
    fields: tuple[Field, ...] = ()
    default_interval_s: float = 10.0


@runtime_checkable
class Source(Protocol):
    """A source instance: ``poll`` yields its current records."""

    async def poll(self) -> Reading: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingSource(Source, Protocol):
    """A source that also pushes readings as they happen."""

    def stream(self) -> AsyncIterator[Reading]: ...


@dataclass(frozen=True)
class SourceFailed:
    """One failed poll (or a broken stream) of a source."""

    source: str
    error: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class SourceStats:
    """Live figures of one source actor, read by /api/sources and /metrics."""

    breaker: Breaker
    polls: int = 0
    errors: int = 0
    last_latency_s: float = 0.0
    streaming: bool = False
    down: bool = False


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced, cut to 300 characters."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return text[:300]


def describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    if isinstance(exc, SourceError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Runner:
    def __init__(
        self,
        section: SourceSection,
        source: Source,
        send: trio.MemorySendChannel[Any],
        stats: SourceStats,
        observe: Callable[[str, float, bool], None],
    ) -> None:
        self.section = section
        self.source = source
        self.send = send
        self.stats = stats
        self.observe = observe
        self.secrets = section.secret_values()
        self.log = log.bind(source=section.name, plugin=section.plugin)

    async def poll_once(self) -> None:
        start = trio.current_time()
        self.stats.breaker = self.stats.breaker.before_call(start)
        self.stats.polls += 1
        try:
            with trio.fail_after(self.section.timeout_s):
                reading = await self.source.poll()
        except Exception as exc:
            await self.failed(exc, trio.current_time() - start)
        else:
            self.stats.last_latency_s = trio.current_time() - start
            self.observe(self.section.name, self.stats.last_latency_s, True)
            self.stats.breaker = self.stats.breaker.success()
            self.came_back()
            await self.send.send(reading)

    async def failed(self, exc: BaseException, latency: float) -> None:
        message = scrub(describe(exc), self.secrets)
        self.stats.errors += 1
        self.observe(self.section.name, latency, False)
        self.stats.breaker = self.stats.breaker.failure(trio.current_time())
        if not self.stats.down:
            self.stats.down = True
            self.log.warning("source down", error=message, breaker=self.stats.breaker.state)
        await self.send.send(SourceFailed(self.section.name, message))

    def came_back(self) -> None:
        if self.stats.down:
            self.stats.down = False
            self.log.info("source back")

    async def poll_loop(self) -> NoReturn:
        while True:
            wait = self.stats.breaker.wait(trio.current_time())
            if wait > 0:
                await trio.sleep(wait)
            started = trio.current_time()
            await self.poll_once()
            if self.stats.breaker.state == "open":
                continue
            await trio.sleep_until(started + self.section.interval_s)

    async def stream_loop(self, source: StreamingSource) -> NoReturn:
        delay = 1.0
        while True:
            try:
                async for reading in source.stream():
                    self.stats.streaming = True
                    delay = 1.0
                    await self.send.send(reading)
                raise SourceError("stream ended")
            except Exception as exc:
                self.stats.streaming = False
                self.log.warning("stream broken", error=scrub(describe(exc), self.secrets))
                await trio.sleep(delay)
                delay = min(delay * 2, 60.0)


async def run_source(
    section: SourceSection,
    source: Source,
    send: trio.MemorySendChannel[Any],
    stats: SourceStats,
    observe: Callable[[str, float, bool], None] = lambda name, latency, ok: None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Poll (and stream) one source forever; never raises for a source failure."""
    runner = _Runner(section, source, send, stats, observe)
    async with trio.open_nursery() as nursery:
        if isinstance(source, StreamingSource):
            nursery.start_soon(runner.stream_loop, source)
        task_status.started()
        await runner.poll_loop()
    raise AssertionError("unreachable")  # pragma: no cover

