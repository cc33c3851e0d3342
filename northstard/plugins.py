"""The plugin manager: a small typed facade over pluggy.

Plugins come from the ``northstard.sources`` entry-point group (built-ins
too). ``NORTHSTARD_DISABLE_PLUGINS=a,b`` blocks entry points by name. Two
source types with one name fail at start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import ModuleType
from typing import cast

import pluggy

from northstard import hookspecs
from northstard.actors.source import Source, SourceType
from northstard.config import SourceSection
from northstard.errors import PluginError

__all__ = ["ENTRY_POINT_GROUP", "Plugins", "make_plugins"]

ENTRY_POINT_GROUP = "northstard.sources"


class Plugins:
    """What the daemon asks of its plugins."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._types: dict[str, SourceType] | None = None

    def __repr__(self) -> str:
        return f"<Plugins {sorted(self.source_types())}>"

    def source_types(self) -> dict[str, SourceType]:
        if self._types is None:
            self._types = self._collect()
        return self._types

    def _collect(self) -> dict[str, SourceType]:
        found: dict[str, SourceType] = {}
        owners: dict[str, str] = {}
        for impl in self.pm.hook.register_source_types.get_hookimpls():
            owner = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            declared = cast(list[SourceType], impl.function() or [])
            for source_type in declared:
                if source_type.name in found:
                    raise PluginError(
                        f"source type {source_type.name!r} is provided by both "
                        f"{owners[source_type.name]!r} and {owner!r}"
                    )
                found[source_type.name] = source_type
                owners[source_type.name] = owner
        return found

    def create_source(self, section: SourceSection) -> Source:
        source = self.pm.hook.create_source(
            plugin=section.plugin, name=section.name, config=dict(section.options)
        )
        if source is None:
            raise PluginError(f"no plugin created a source of type {section.plugin!r}")
        if not isinstance(source, Source):
            raise PluginError(f"plugin {section.plugin!r} returned {source!r}, not a Source")
        return source


def make_plugins(
    *, entry_points: bool = True, extra: Iterable[ModuleType | object] = (),
    blocked: Iterable[str] | None = None,
) -> Plugins:
    """A fresh plugin manager with the entry-point plugins and ``extra`` registered."""
    pm = pluggy.PluginManager("northstard")
    pm.add_hookspecs(hookspecs)
    if blocked is None:
        blocked = [n.strip() for n in os.environ.get("NORTHSTARD_DISABLE_PLUGINS", "").split(",")]
    for name in blocked:
        if name:
            pm.set_blocked(name)
    try:
        if entry_points:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for plugin in extra:
            pm.register(plugin)
        pm.check_pending()
    except (ValueError, pluggy.PluginValidationError, ImportError) as exc:
        raise PluginError(f"cannot load plugins: {exc}") from exc
    return Plugins(pm)
