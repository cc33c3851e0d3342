"""The built-in ``kalshi`` source: trading P&L from the Kalshi Trade API v2.

Polls balance, positions, fills, settlements and the prices of held markets
over signed REST (RSA-PSS), and streams fills, position changes and tickers
over the signed WebSocket so that trading P&L moves within a second.
Registered through the ``northstard.sources`` entry point like any
third-party plugin. Without ``key_id`` and ``private_key`` the plugin loads,
says once at start that the source is off, and each poll fails clearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from northstard.actors.source import SourceType
from northstard.hookspecs import hookimpl

from .errors import KalshiError
from .settings import FIELDS, Settings
from .source import KalshiSource, KalshiStreamingSource, make_source

__all__ = [
    "KalshiError",
    "KalshiSource",
    "KalshiStreamingSource",
    "Settings",
    "create_source",
    "register_source_types",
]

DESCRIPTION = "Kalshi trading: positions marked to market, realized P&L, settlements, fees, cash"
DEFAULT_INTERVAL_S = 5.0


@hookimpl
def register_source_types() -> list[SourceType]:
    """The ``kalshi`` source type."""
    return [SourceType("kalshi", DESCRIPTION, FIELDS, default_interval_s=DEFAULT_INTERVAL_S)]


@hookimpl
def create_source(plugin: str, name: str, config: Mapping[str, Any]) -> KalshiSource | None:
    """A kalshi source for a ``kalshi`` section; None for any other plugin."""
    if plugin != "kalshi":
        return None
    return make_source(name, Settings.from_options(config, f"sources.{name}"))
