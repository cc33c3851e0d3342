"""A source plugin for tests: readings pushed by the test, or failures on demand.

``Feed`` is what a test holds: ``await feed.push(records)`` hands a reading to
the source's stream, ``feed.fail("why")`` makes the next polls fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import trio

from northstard.actors.source import SourceType
from northstard.config import Field
from northstard.core.records import Reading, Record
from northstard.errors import SourceError
from northstard.hookspecs import hookimpl

FEEDS: dict[str, Feed] = {}


class Feed:
    def __init__(self, name: str) -> None:
        self.name = name
        self.send, self.receive = trio.open_memory_channel[Reading](64)
        self.failure: str | None = None
        self.refused: tuple[str, ...] = ()  # what each poll's reading says it refused
        self.polls = 0

    async def push(self, records: Sequence[Record]) -> None:
        await self.send.send(Reading(self.name, tuple(records), datetime.now(UTC)))

    def fail(self, why: str | None) -> None:
        self.failure = why


class ScriptedSource:
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    async def poll(self) -> Reading:
        self.feed.polls += 1
        await trio.lowlevel.checkpoint()
        if self.feed.failure:
            raise SourceError(self.feed.failure)
        return Reading(self.feed.name, (), datetime.now(UTC), refused=self.feed.refused)

    async def stream(self) -> AsyncIterator[Reading]:
        async for reading in self.feed.receive:
            yield reading

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class ScriptedPlugin:
    @hookimpl
    def register_source_types(self) -> list[SourceType]:
        return [SourceType("scripted", "test source", (Field("tag", str, ""),), 3600.0)]

    @hookimpl
    def create_source(self, plugin: str, name: str, config: Mapping[str, Any]) -> Any:
        if plugin != "scripted":
            return None
        feed = FEEDS.setdefault(name, Feed(name))
        return ScriptedSource(feed)
