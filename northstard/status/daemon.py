"""The daemon's status as the edges read it: one small frozen record, made when asked.

The wiring (``daemon.py``) makes it from the actors' own state; ``/api/health``
and ``/metrics`` read only this record, never an actor. Made per request: it
holds one document per actor and per source (bounded by the config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["DaemonStatus", "StatusOf"]


@dataclass(frozen=True)
class DaemonStatus:
    healthy: bool  # every core actor runs (the supervisor's view)
    actors: Mapping[str, Mapping[str, object]]  # actor name -> its status document
    store_error: str | None  # why SQLite cannot persist now; None: it can
    unsaved: int  # changes accepted but not yet on disk
    backup: Mapping[str, object]  # the backup job's document ({"status": "off"} when off)
    grpc: Mapping[str, object]  # the gRPC edge's document ({"status": "off"} when off)
    sources_up: Mapping[str, bool]  # source name -> its circuit breaker is closed


StatusOf = Callable[[], DaemonStatus]
"""What an edge is handed: the status now, as a record."""
