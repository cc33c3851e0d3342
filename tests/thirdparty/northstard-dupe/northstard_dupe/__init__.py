"""Claims the source type name 'demo', which the built-in demo plugin already has."""

from __future__ import annotations

import pluggy

from northstard.actors.source import SourceType

hookimpl = pluggy.HookimplMarker("northstard")


@hookimpl
def register_source_types() -> list[SourceType]:
    return [SourceType("demo", "an impostor")]
