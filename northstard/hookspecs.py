"""The plugin contract: the hooks a source plugin implements.

A plugin is a module (or object) registered through the ``northstard.sources``
entry-point group, built-ins included. It declares the source types it
provides (``register_source_types``) and builds an instance for a config
section (``create_source``). The instance is a ``northstard.actors.source.Source``:
an object with ``async poll() -> Reading``, optionally ``stream()``, and
``async aclose()``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pluggy

from northstard.actors.source import Source, SourceType

hookspec = pluggy.HookspecMarker("northstard")
hookimpl = pluggy.HookimplMarker("northstard")

__all__ = ["create_source", "hookimpl", "hookspec", "register_source_types"]


@hookspec
def register_source_types() -> list[SourceType]:  # type: ignore[empty-body]
    """Declare the source types this plugin provides: name, description, config schema."""


@hookspec(firstresult=True)
def create_source(plugin: str, name: str, config: Mapping[str, object]) -> Source | None:
    """Build the source instance ``name`` of type ``plugin`` from its validated config, or None."""
