"""The ``anthropic_costs`` source: AI spend from the Anthropic Admin API.

Reported daily costs come from the cost report (cents as decimal strings,
turned into exact dollars); today's spend, not yet reported, is estimated
from token usage × a per-model price table and marked ``estimated``. When a
day is reported, its estimate is withdrawn. With no admin key or OAuth token
the source is off and says so once. Registered through the
``northstard.sources`` entry point like any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from northstard.actors.source import SourceType
from northstard.hookspecs import hookimpl

from .prices import DEFAULT_PRICES, Price, PriceTable
from .settings import FIELDS, Settings
from .source import AnthropicCostSource

__all__ = [
    "DEFAULT_PRICES",
    "AnthropicCostSource",
    "Price",
    "PriceTable",
    "Settings",
    "create_source",
    "register_source_types",
]

PLUGIN = "anthropic_costs"
DESCRIPTION = "AI spend from the Anthropic Admin API: daily cost report plus an intraday estimate"


@hookimpl
def register_source_types() -> list[SourceType]:
    """The ``anthropic_costs`` source type (polls once a minute by default)."""
    return [SourceType(PLUGIN, DESCRIPTION, FIELDS, default_interval_s=60.0)]


@hookimpl
def create_source(plugin: str, name: str, config: Mapping[str, Any]) -> AnthropicCostSource | None:
    """An ``AnthropicCostSource`` for an ``anthropic_costs`` section; None for any other plugin."""
    if plugin != PLUGIN:
        return None
    return AnthropicCostSource(name, Settings.from_options(config, f"sources.{name}"))
