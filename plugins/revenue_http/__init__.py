"""The ``revenue_http`` source: revenue totals from an in-house HTTP endpoint.

``GET {base_url}{path}`` answers ``{"invoiced": ..., "collected": ...}``:
totals to date in dollars, as numbers or decimal strings, parsed exactly.
Field names are configurable; a bearer token is optional. Registered through
the ``northstard.sources`` entry point like any third-party plugin.

``http`` is the JSON-over-HTTP client the built-in HTTP sources share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from northstard.actors.source import SourceType
from northstard.hookspecs import hookimpl

from .settings import FIELDS, Settings
from .source import RevenueHttpSource

__all__ = ["RevenueHttpSource", "Settings", "create_source", "register_source_types"]

PLUGIN = "revenue_http"
DESCRIPTION = "revenue totals (invoiced, collected) from an in-house HTTP endpoint"


@hookimpl
def register_source_types() -> list[SourceType]:
    """The ``revenue_http`` source type."""
    return [SourceType(PLUGIN, DESCRIPTION, FIELDS, default_interval_s=30.0)]


@hookimpl
def create_source(plugin: str, name: str, config: Mapping[str, Any]) -> RevenueHttpSource | None:
    """A ``RevenueHttpSource`` for a ``revenue_http`` section; None for any other plugin."""
    if plugin != PLUGIN:
        return None
    return RevenueHttpSource(name, Settings.from_options(config, f"sources.{name}"))
