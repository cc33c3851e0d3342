"""The built-in demo source: a seeded simulation of a small AI-run business.

Agents trade Kalshi-like prediction markets, spend on Claude models and
infrastructure, and invoice customers; the daemon's P&L moves every second.
An empty ``[sources.demo]`` section works: every key has a default (see
``settings.FIELDS``). Registered through the ``northstard.sources`` entry
point like any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from northstard.actors.source import SourceType
from northstard.hookspecs import hookimpl

from .settings import FIELDS, Settings
from .sim import Simulator
from .source import DemoSource

__all__ = ["DemoSource", "Settings", "Simulator", "create_source", "register_source_types"]

DESCRIPTION = (
    "simulated business: agents trading prediction markets, AI and infrastructure spend, "
    "invoices and refunds"
)


@hookimpl
def register_source_types() -> list[SourceType]:
    """The ``demo`` source type."""
    return [SourceType("demo", DESCRIPTION, FIELDS, default_interval_s=1.0)]


@hookimpl
def create_source(plugin: str, name: str, config: Mapping[str, Any]) -> DemoSource | None:
    """A ``DemoSource`` for a ``demo`` section; None for any other plugin."""
    if plugin != "demo":
        return None
    return DemoSource(name, Settings.from_options(config, f"sources.{name}"))
