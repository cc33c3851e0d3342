"""A third-party source: a fixed subscription business that bills ``plan`` dollars per poll."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pluggy
import trio

from northstard.actors.source import SourceType
from northstard.config import Field
from northstard.core.records import Invoice, Reading

hookimpl = pluggy.HookimplMarker("northstard")


class ExampleSource:
    def __init__(self, name: str, plan: Decimal) -> None:
        self.name = name
        self.plan = plan
        self.polls = 0

    async def poll(self) -> Reading:
        await trio.lowlevel.checkpoint()
        self.polls += 1
        invoice = Invoice(id=f"inv-{self.polls}", total=self.plan, paid=self.plan,
                          status="paid", ts=datetime.now(UTC), agent="example-agent")
        return Reading(self.name, (invoice,), datetime.now(UTC))

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@hookimpl
def register_source_types() -> list[SourceType]:
    return [SourceType("example", "fixed subscription revenue",
                       (Field("plan", str, "9.99", help="dollars billed per poll"),), 0.05)]


@hookimpl
def create_source(plugin: str, name: str, config: Mapping[str, Any]) -> ExampleSource | None:
    if plugin != "example":
        return None
    return ExampleSource(name, Decimal(config["plan"]))
