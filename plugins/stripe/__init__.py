"""The ``stripe`` source: invoiced and collected revenue, and refunds, from Stripe.

Invoices become ``Invoice`` records (open and paid totals count as invoiced,
amounts paid as collected), refund balance transactions become ``Refund``
records; minor units are converted per currency, and revenue is attributed
to an agent through an invoice metadata key. With no API key the source is
off and says so once. Registered through the ``northstard.sources`` entry
point like any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from northstard.actors.source import SourceType
from northstard.hookspecs import hookimpl

from .settings import FIELDS, Settings
from .source import StripeSource

__all__ = ["Settings", "StripeSource", "create_source", "register_source_types"]

PLUGIN = "stripe"
DESCRIPTION = "revenue from Stripe: invoices (invoiced, collected) and refunds"


@hookimpl
def register_source_types() -> list[SourceType]:
    """The ``stripe`` source type."""
    return [SourceType(PLUGIN, DESCRIPTION, FIELDS, default_interval_s=60.0)]


@hookimpl
def create_source(plugin: str, name: str, config: Mapping[str, Any]) -> StripeSource | None:
    """A ``StripeSource`` for a ``stripe`` section; None for any other plugin."""
    if plugin != PLUGIN:
        return None
    return StripeSource(name, Settings.from_options(config, f"sources.{name}"))
